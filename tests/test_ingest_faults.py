"""Ingest under store faults, with the in-process bus: back off, commit nothing early, dead-letter refusals."""

from __future__ import annotations

import json

import numpy as np

from dcops.batch import Batch
from dcops.bus import TOPIC_DEADLETTER, InProcessBus, publish_batch
from dcops.codec import encode_batch
from dcops.ingest import IngestWorker
from dcops.store.base import StoreError, StoreUnavailable
from dcops.store.duckdb_store import DuckDBStore


def _batch(t0: int, rack: str, power: float = 300.0) -> Batch:
    return Batch("rack", np.array([t0], dtype=np.int64), {"rack": np.array([rack], dtype=object)},
                 {"rack_power_w": np.array([power])})


class FlakyStore:
    """A DuckDB store that is unavailable for the first `down` writes and refuses negative power."""

    def __init__(self, down: int) -> None:
        self.inner = DuckDBStore()
        self.down = down
        self.calls = 0

    def write(self, batches):
        self.calls += 1
        if self.calls <= self.down:
            raise StoreUnavailable("connection refused")
        if any((b.fields["rack_power_w"] < 0).any() for b in batches):
            raise StoreError("field type conflict")
        return self.inner.write(batches)

    def write_events(self, events):
        return self.inner.write_events(events)


def test_backs_off_without_committing_then_writes_everything():
    bus = InProcessBus()
    store = FlakyStore(down=4)
    sleeps: list[float] = []
    worker = IngestWorker(bus, store, sleep=sleeps.append, backoff_max_s=0.4)
    for i in range(5):
        publish_batch(bus, _batch(i, "R1"), key="R1")
    lag_before = bus.lag("samples", "ingest")
    commits = []
    orig_commit = worker.consumer.commit
    worker.consumer.commit = lambda: (commits.append(store.calls), orig_commit())[1]
    worker.drain()
    assert lag_before == 5 and bus.lag("samples", "ingest") == 0
    assert sleeps == [0.1, 0.2, 0.4, 0.4]  # exponential, capped
    assert commits and min(commits) > 4  # the first commit came after the store accepted
    assert store.inner.count("rack") == 5 and worker.stats.store_errors == 4


def test_refused_message_is_isolated_and_dead_lettered():
    bus = InProcessBus()
    store = FlakyStore(down=0)
    dlq = bus.consumer(TOPIC_DEADLETTER, "dlq")
    worker = IngestWorker(bus, store, sleep=lambda s: None)
    publish_batch(bus, _batch(1, "R1"), key="R1")
    # published raw, past the edge validation of publish_batch, as a foreign producer could
    bus.publish("samples", "R2", encode_batch(_batch(2, "R2", power=-1.0)))
    publish_batch(bus, _batch(3, "R3"), key="R3")
    worker.drain()
    assert store.inner.count("rack") == 2
    (msg,) = dlq.poll(0, 10)
    header = json.loads(msg.value.split(b"\n", 1)[0])
    assert header["key"] == "R2" and "store refused: field type conflict" in header["reason"]
    assert bus.lag("samples", "ingest") == 0


def test_stop_during_backoff_leaves_poll_uncommitted():
    bus = InProcessBus()
    store = FlakyStore(down=10**9)
    worker = IngestWorker(bus, store, sleep=lambda s: worker.stop())
    publish_batch(bus, _batch(1, "R1"), key="R1")
    worker.run()  # returns: stopped while the store was down
    worker.close()
    assert bus.lag("samples", "ingest") == 1
    again = IngestWorker(bus, DuckDBStore())
    again.drain()
    assert again.store.count("rack") == 1


# ----- poison isolation (issue 20, failure 2) ---------------------------------------------------
import pytest  # noqa: E402

from tests.poison_frames import poison  # noqa: E402


@pytest.mark.parametrize("name", list(poison(0)))
def test_poison_frame_is_dead_lettered_alone_and_ingest_goes_on(name):
    from dcops import metrics as dcops_metrics

    bus = InProcessBus()
    store = DuckDBStore()
    registry = dcops_metrics.Metrics()
    dlq = bus.consumer(TOPIC_DEADLETTER, "dlq")
    worker = IngestWorker(bus, store, sleep=lambda s: pytest.fail("ingest backed off on a poison frame"),
                          metrics=registry, max_records=20)
    t0 = 1_700_000_000 * 10**9
    for i in range(10):
        publish_batch(bus, _batch(t0 + i, "R1"), key="R1")
    bus.publish("samples", "R9", poison(t0)[name])
    for i in range(10, 60):  # the next 50 good frames, several polls' worth
        publish_batch(bus, _batch(t0 + i, "R1"), key="R1")
    worker.drain()
    assert store.count("rack") == 60, "every good frame is stored"
    assert bus.lag("samples", "ingest") == 0, "offsets moved past the poison"
    (msg,) = dlq.poll(0, 10)
    header = json.loads(msg.value.split(b"\n", 1)[0])
    assert header["key"] == "R9" and header["reason"]
    assert worker.stats.dead_letters == 1 and worker.stats.values == 60
    assert not any(m.startswith("#") for m in store.measurements())
    check = worker.health()
    assert check.ok and "1 dead-lettered" in check.detail
    from prometheus_client import generate_latest

    assert 'dcops_dead_letters_total{stage="ingest"} 1.0' in generate_latest(registry.registry).decode()


def test_store_refusal_in_a_big_poll_is_found_by_splitting():
    bus = InProcessBus()
    store = FlakyStore(down=0)
    worker = IngestWorker(bus, store, sleep=lambda s: None, max_records=64)
    for i in range(64):
        bus.publish("samples", "R", encode_batch(_batch(i, "R1", power=-1.0 if i == 37 else 1.0)))
    worker.drain()
    assert store.inner.count("rack") == 63 and worker.stats.dead_letters == 1
    assert store.calls <= 2 * 7 + 2  # halving: about 2*log2(64) writes, not 64
