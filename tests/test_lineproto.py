"""Line protocol built column by column from batches."""

from __future__ import annotations

import numpy as np
import pytest

from dcops.batch import Batch, Event
from dcops.store.lineproto import batch_lines, batches_to_chunks, event_lines


def _batch():
    return Batch(
        "accel",
        np.array([1_000, 2_000, 3_000], dtype=np.int64),
        {"rack": np.array(["R1-01", "R 1,=x", "R1-02"], dtype=object),
         "accel": np.array(["s1:0", "s1:1", ""], dtype=object)},
        {"accel_power_w": np.array([300.5, np.nan, np.nan]),
         "accel_temp_degc": np.array([61.0, 1e-05, np.nan])},
    )


def test_lines_escape_skip_nan_and_empty_tags():
    lines = batch_lines(_batch())
    assert lines == [
        "accel,accel=s1:0,rack=R1-01 accel_power_w=300.5,accel_temp_degc=61.0 1000",
        r"accel,accel=s1:1,rack=R\ 1\,\=x accel_temp_degc=1e-05 2000",
    ]  # the third row has no value at all: dropped


def test_floats_round_trip_exactly():
    vals = np.array([0.1, 1 / 3, 123456789.123, -2.5e-300, 7.0])
    b = Batch("rack", np.arange(5, dtype=np.int64), {"rack": np.full(5, "R", dtype=object)}, {"rack_power_w": vals})
    parsed = [float(line.split(" ")[1].split("=")[1]) for line in batch_lines(b)]
    assert parsed == vals.tolist()


def test_infinite_values_are_refused():
    b = Batch("rack", np.arange(1, dtype=np.int64), {}, {"rack_power_w": np.array([np.inf])})
    with pytest.raises(ValueError, match="rack_power_w"):
        batch_lines(b)


def test_chunks_split_bodies():
    n = 25
    b = Batch("pdu", np.arange(n, dtype=np.int64), {"device": np.full(n, "PDU-A1", dtype=object)},
              {"pdu_power_w": np.arange(n, dtype=float)})
    chunks = list(batches_to_chunks([b, b], max_lines=20))
    assert [c.count(b"\n") + 1 for c in chunks] == [20, 20, 10]
    assert chunks[0].startswith(b"pdu,device=PDU-A1 pdu_power_w=0.0 0\n")


def test_event_lines_quote_strings():
    e = Event(5, "xid", "agent", {"rack": "R2-01", "device": "gpu-1", "accel": "gpu-1:3"}, "major",
              'XID 79 "fallen off the bus"', {"xid": 79})
    (line,) = event_lines([e])
    assert line.startswith("events,accel=gpu-1:3,device=gpu-1,kind=xid,rack=R2-01,severity=major,source=agent ")
    assert r'message="XID 79 \"fallen off the bus\""' in line and line.endswith(" 5")
