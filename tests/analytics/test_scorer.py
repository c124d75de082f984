"""The streaming scorer on the in-process bus: intervals, findings frames, dead letters, commits."""

from __future__ import annotations

import copy

from dcops.analytics.fleet import FleetScorer
from dcops.analytics.scorer import StreamingScorer
from dcops.bus import TOPIC_DEADLETTER, TOPIC_FINDINGS, InProcessBus, publish_batch
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
