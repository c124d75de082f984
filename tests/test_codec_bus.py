from __future__ import annotations

import threading

import numpy as np
import pytest

from dcops.batch import Batch, Event, concat_batches
from dcops.bus import TOPIC_DEADLETTER, InProcessBus, publish_batch, publish_events
from dcops.codec import CodecError, decode, decode_batch, encode_batch, encode_events
from dcops.ingest import IngestWorker
from dcops.store.duckdb_store import DuckDBStore


def sample_batch(n=5, t=1):
    return Batch("accel", np.full(n, t), {"site": "s", "accel": np.array([str(i) for i in range(n)], dtype=object)},
                 {"accel_power_w": np.arange(n, dtype=float), "accel_temp_degc": np.r_[np.nan, np.ones(n - 1)]})


def test_batch_roundtrip_keeps_nan_and_tags():
    b = sample_batch()
    d = decode_batch(encode_batch(b))
    assert d.measurement == "accel" and list(d.tags["accel"]) == list(b.tags["accel"])
    np.testing.assert_array_equal(d.fields["accel_temp_degc"], b.fields["accel_temp_degc"])
    assert d.n_values == b.n_values == 9


@pytest.mark.parametrize("n", [3, 2000])  # the small-batch (dict) and large-batch (pandas) paths
def test_tag_dictionary_in_order_of_first_appearance(n):
    racks = np.array([["R2", "R1", "R2"][i % 3] for i in range(n)], dtype=object)
    odd = np.array([None, "x", None] * (n // 3) + [None] * (n % 3), dtype=object)
    b = Batch("m", np.arange(n), {"rack": racks, "odd": odd}, {"v": np.zeros(n)})
    back = decode_batch(encode_batch(b))
    assert list(back.tags["rack"]) == list(racks)
    assert list(back.tags["odd"]) == ["nan" if v is None else v for v in odd]  # pandas' NA rule on both paths
    assert encode_batch(b)[:80].count(b'"R2","R1"') == 1


@pytest.mark.parametrize("code", [-1, 1, 2**31 - 1])
def test_tag_codes_outside_the_dictionary_are_refused(code):
    frame = bytearray(encode_batch(Batch("m", np.array([5]), {"rack": "r1"}, {})))
    frame[-4:] = np.array([code], dtype="<i4").tobytes()  # the one row's tag code, last in a frame without fields
    with pytest.raises(CodecError, match="outside its dictionary"):
        decode_batch(bytes(frame))


def test_decoded_batches_of_one_frame_share_nothing():
    frame = encode_batch(sample_batch())
    first, second = decode_batch(frame), decode_batch(frame)  # the second header comes from the cache
    first.tags["accel"][0] = "changed"
    first.fields["accel_power_w"][0] = -1.0
    assert second.tags["accel"][0] == "0" and second.fields["accel_power_w"][0] == 0.0
    assert decode_batch(frame).tags["accel"][0] == "0"


def test_events_roundtrip():
    e = Event(5, "xid", "nvml", {"rack": "r"}, "major", "m", {"xid": 79})
    assert decode(encode_events([e, e])) == [e, e]


@pytest.mark.parametrize("data,reason", [
    (b"garbage", "magic"),
    (encode_batch(sample_batch())[:-3], "promises"),
    (b"DCE1{not json", "unreadable"),
])
def test_corrupt_frames_raise_codec_error(data, reason):
    with pytest.raises(CodecError, match=reason):
        decode(data)


def test_batch_shape_checked():
    with pytest.raises(ValueError, match="shape"):
        Batch("x", np.zeros(3), {"a": np.array(["1", "2"], dtype=object)}, {})
    with pytest.raises(ValueError, match="severity"):
        Event(1, "k", "s", {}, "apocalyptic")


def test_concat_fills_missing_columns():
    a = sample_batch(2)
    b = Batch("accel", np.array([3]), {"site": "s"}, {"accel_util_pct": [5.0]})
    c = concat_batches([a, b])
    assert len(c) == 3 and np.isnan(c.fields["accel_util_pct"][0]) and c.tags["accel"][2] == ""


def test_bus_redelivers_uncommitted_messages():
    bus = InProcessBus()
    c = bus.consumer("samples", "g")
    for i in range(3):
        bus.publish("samples", "k", bytes([i]))
    assert [m.value for m in c.poll(0.1)] == [b"\x00", b"\x01", b"\x02"]
    c.close()  # crashed before commit
    again = bus.consumer("samples", "g")
    got = again.poll(0.1, max_records=2)
    assert [m.value for m in got] == [b"\x00", b"\x01"]
    again.commit()
    again.close()
    third = bus.consumer("samples", "g")
    assert [m.value for m in third.poll(0.1)] == [b"\x02"]
    other = bus.consumer("samples", "other-group")
    assert [m.value for m in other.poll(0.01)] == [b"\x02"]  # a new group starts at the oldest retained message
    assert bus.lag("samples", "g") == 1


def test_bus_backpressure_blocks_until_commit():
    bus = InProcessBus(max_messages=2)
    c = bus.consumer("t", "g")
    bus.publish("t", "", b"1")
    bus.publish("t", "", b"2")
    done = threading.Event()
    threading.Thread(target=lambda: (bus.publish("t", "", b"3"), done.set()), daemon=True).start()
    assert not done.wait(0.3)
    c.poll(0.1)
    c.commit()
    assert done.wait(2)


class FlakyStore(DuckDBStore):
    def __init__(self, fails):
        super().__init__(":memory:")
        self.fails = fails

    def write(self, batches):
        if self.fails:
            self.fails -= 1
            raise ConnectionError("store down")
        return super().write(batches)


def test_ingest_writes_commits_and_deadletters():
    bus = InProcessBus()
    store = FlakyStore(fails=2)
    dead = bus.consumer(TOPIC_DEADLETTER, "audit")
    worker = IngestWorker(bus, store, sleep=lambda s: None)
    for t in range(4):
        publish_batch(bus, sample_batch(t=t), key="r1")
    bus.publish("samples", "r1", b"corrupt bytes")
    publish_events(bus, [Event(1, "xid", "nvml", {"rack": "r1"}, "major")])
    worker.drain()
    assert store.count("accel") == 20
    assert store.events(0, 10)[0].kind == "xid"
    assert worker.stats.store_errors == 2 and worker.stats.dead_letters == 1
    (msg,) = dead.poll(0.1)
    assert b'"reason": "unknown frame magic' in msg.value and msg.value.endswith(b"corrupt bytes")
    assert bus.lag("samples", "ingest") == 0
