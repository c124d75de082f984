"""The streaming scorer on the in-process bus: intervals, findings frames, dead letters, commits."""

from __future__ import annotations

import copy

from dcops.analytics.fleet import FleetScorer
from dcops.analytics.scorer import RackScope, StreamingScorer
from dcops.bus import TOPIC_DEADLETTER, TOPIC_FINDINGS, InProcessBus, publish_batch, publish_by_rack
from dcops.findings import decode_findings


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def _publish_interval(bus, batches):
    for b in batches:  # one message per measurement, keyed like collectors do
        publish_batch(bus, b, key=b.measurement)


def test_scores_each_interval_once_complete_and_publishes_findings(sim_history, trained):
    sim, history = sim_history
    sim = copy.deepcopy(sim)
    bus, clock = InProcessBus(), FakeClock()
    scorer = StreamingScorer(bus, FleetScorer(sim.inventory, trained), interval_s=sim.interval_s, lateness_s=2.0,
                             clock=clock)
    out = bus.consumer(TOPIC_FINDINGS, "test")
    for batches in history:
        _publish_interval(bus, batches)
    scorer.run_once(timeout_s=0, max_records=100_000)
    assert scorer.stats.intervals == len(history) - 1  # the newest interval may still be filling
    clock.t += 5
    scorer.run_once(timeout_s=0)
    assert scorer.stats.intervals == len(history)
    assert bus.lag("samples", "analytics") == 0  # everything scored, so committed

    gpu = sim.inventory.accel_ids[0]
    sim.inject("gpu_xid79", gpu, 300)
    sim.step()
    _publish_interval(bus, sim.batches())
    findings = scorer.run_once(timeout_s=0)
    assert not findings  # the interval may still be filling
    clock.t += 5
    findings = scorer.run_once(timeout_s=0)
    assert any(f.component == gpu for f in findings)
    frames = [decode_findings(m.value) for m in out.poll(0, 10_000)]
    assert any(f.component == gpu and f.detector == "univariate" for frame in frames for f in frame)


def test_undecodable_message_goes_to_dead_letter_and_late_samples_are_counted(sim_history):
    sim, history = sim_history
    bus, clock = InProcessBus(), FakeClock()
    dead = bus.consumer(TOPIC_DEADLETTER, "test")
    scorer = StreamingScorer(bus, FleetScorer(sim.inventory, None), lateness_s=1.0, clock=clock)
    bus.publish("samples", "x", b"garbage")
    _publish_interval(bus, history[0])
    _publish_interval(bus, history[1])
    scorer.run_once(timeout_s=0)
    clock.t += 2
    scorer.run_once(timeout_s=0)
    letters = dead.poll(0, 10)
    assert len(letters) == 1 and b'"stage": "analytics"' in letters[0].value
    _publish_interval(bus, history[0])  # replayed interval that was already scored
    scorer.run_once(timeout_s=0)
    assert scorer.stats.late_batches == len(history[0]) and scorer.stats.intervals == 2


def test_uncommitted_samples_are_scored_again_after_a_crash(sim_history):
    sim, history = sim_history
    bus, clock = InProcessBus(), FakeClock()
    first = StreamingScorer(bus, FleetScorer(sim.inventory, None), lateness_s=1.0, clock=clock)
    _publish_interval(bus, history[0])
    _publish_interval(bus, history[1])
    first.run_once(timeout_s=0)  # interval 0 scored, interval 1 pending: nothing committed yet
    assert first.stats.intervals == 1 and bus.lag("samples", "analytics") > 0
    first.close()  # crash
    second = StreamingScorer(bus, FleetScorer(sim.inventory, None), lateness_s=1.0, clock=clock)
    second.run_once(timeout_s=0, max_records=10_000)
    clock.t += 2
    second.run_once(timeout_s=0)
    assert second.stats.intervals == 2 and bus.lag("samples", "analytics") == 0


class _Share:
    """One member's share of a rack-keyed `samples` topic, as a consumer group hands it out: the
    messages of its racks, and the unkeyed facility messages when `facility` is set."""

    def __init__(self, consumer, racks, all_racks, facility):
        self.consumer, self.racks, self.all_racks, self.facility = consumer, set(racks), set(all_racks), facility

    def poll(self, timeout_s=1.0, max_records=100):
        return [m for m in self.consumer.poll(timeout_s, max_records)
                if m.key in self.racks or (self.facility and m.key not in self.all_racks)]

    def assignment(self):  # one partition per rack, and one for the unkeyed facility messages
        racks = sorted(self.all_racks)
        return {("samples", racks.index(r)) for r in self.racks} | ({("samples", len(racks))} if self.facility else set())

    def owned(self, topic, keys):
        return [k for k in keys if k in self.racks]

    def commit(self):
        self.consumer.commit()

    def close(self):
        self.consumer.close()



def _key(f):
    return f.component, f.detector, f.time_ns, f.score


def test_two_rack_scoped_scorers_find_what_one_whole_site_scorer_finds(sim_history):
    """Members of one group, each scoring its racks over its part of the inventory, together emit
    every finding of a whole-site scorer, each once (peers are within a host or rack)."""
    sim, history = sim_history
    sim = copy.deepcopy(sim)
    racks = [r.name for r in sim.inventory.racks]
    halves = (racks[:3], racks[3:])
    inv = sim.inventory
    gpu = inv.accel_ids[inv.accel_mask(halves[1]) & (inv.accel_tags["vendor"] == "nvidia")][0]
    sim.inject("gpu_xid79", gpu, 300)
    sim.step()
    history = [*history[-60:], sim.batches()]
    bus, clock = InProcessBus(max_messages=1_000_000), FakeClock()
    whole = StreamingScorer(bus, FleetScorer(sim.inventory, None), lateness_s=1.0, clock=clock, group="whole")
    members = [StreamingScorer(bus, None, lateness_s=1.0, clock=clock,
                               consumer=_Share(bus.consumer("samples", f"member-{i}"), half, racks, facility=i == 0),
                               scope=RackScope(sim.inventory))
               for i, half in enumerate(halves)]
    for batches in history:
        for b in batches:
            publish_by_rack(bus, b)
    found = {}
    for name, scorer in (("whole", whole), *((f"m{i}", m) for i, m in enumerate(members))):
        out = scorer.run_once(timeout_s=0, max_records=1_000_000)
        clock.t += 5
        found[name] = out + scorer.run_once(timeout_s=0)
        clock.t -= 5
    assert [m.fleet.inventory.n_accel for m in members] == [
        int(sim.inventory.accel_mask(h).sum()) for h in halves]  # each holds only its racks
    split = [_key(f) for f in found["m0"] + found["m1"]]
    assert len(split) == len(set(split))  # no finding from both members
    assert set(split) == {_key(f) for f in found["whole"]}
    assert {f.target.get("rack") for f in found["m1"]} <= set(halves[1])  # facility findings come from m0
    assert any(f.component == gpu for f in found["m1"]) and not any(f.component == gpu for f in found["m0"])


def test_a_rack_scoped_scorer_rebuilds_for_the_racks_it_holds_after_a_rebalance(sim_history):
    sim, history = sim_history
    racks = [r.name for r in sim.inventory.racks]
    bus, clock = InProcessBus(max_messages=1_000_000), FakeClock()
    share = _Share(bus.consumer("samples", "member"), racks[:2], racks, facility=False)
    scorer = StreamingScorer(bus, None, lateness_s=1.0, clock=clock, consumer=share, scope=RackScope(sim.inventory))
    for b in history[0]:
        publish_by_rack(bus, b)
    scorer.run_once(timeout_s=0, max_records=100_000)
    assert set(scorer.fleet.inventory.accel_tags["rack"]) == set(racks[:2]) and scorer.stats.rescoped == 1
    share.racks = set(racks[2:5])  # the group rebalanced
    for b in history[1]:
        publish_by_rack(bus, b)
    scorer.run_once(timeout_s=0, max_records=100_000)
    assert scorer.stats.intervals == 1  # the interval pending from the old racks was scored first
    assert set(scorer.fleet.inventory.accel_tags["rack"]) == set(racks[2:5]) and scorer.stats.rescoped == 2
    clock.t += 5
    scorer.run_once(timeout_s=0)
    assert scorer.stats.intervals == 2 and bus.lag("samples", "member") == 0
