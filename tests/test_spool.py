"""The producer's on-disk spool: order, bound, crash recovery."""

from __future__ import annotations

import pytest

from dcops.spool import Spool, SpoolFull


def test_replays_in_order_and_acks_only_what_it_is_told(tmp_path):
    sp = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=200)  # tiny segments: exercise rollover
    for i in range(50):
        sp.append("samples", f"rack-{i % 3}", b"v%d" % i)
    assert sp.depth == 50
    head = sp.peek(10)
    assert [r.value for r in head] == [b"v%d" % i for i in range(10)]
    assert head[1].topic == "samples" and head[1].key == "rack-1"
    sp.ack(7)
    assert sp.depth == 43
    assert [r.value for r in sp.peek(3)] == [b"v7", b"v8", b"v9"]
    sp.ack(43)
    assert sp.depth == 0 and sp.peek(5) == [] and sp.bytes == 0


def test_survives_restart_and_cuts_torn_tail(tmp_path):
    sp = Spool(tmp_path, segment_bytes=150)
    for i in range(20):
        sp.append("events", "", b"e%d" % i)
    sp.ack(5)
    sp.close()
    segs = sorted(tmp_path.glob("*.seg"))
    with open(segs[-1], "ab") as f:  # a crash in the middle of an append
        f.write(b"\x10\x00\x00\x00\x01\x02")
    sp2 = Spool(tmp_path, segment_bytes=150)
    assert sp2.depth == 15
    assert [r.value for r in sp2.peek(100)] == [b"e%d" % i for i in range(5, 20)]
    sp2.append("events", "", b"after")
    assert sp2.peek(100)[-1].value == b"after"


def test_bounded_refuses_loudly(tmp_path):
    sp = Spool(tmp_path, max_bytes=200)
    sp.append("samples", "r", b"x" * 100)
    with pytest.raises(SpoolFull, match="full"):
        sp.append("samples", "r", b"x" * 100)
    assert sp.depth == 1
    sp.ack(1)
    sp.append("samples", "r", b"x" * 100)  # room again once replayed
    assert sp.depth == 1


def test_rejects_nonsense_bound(tmp_path):
    with pytest.raises(ValueError, match="max_bytes"):
        Spool(tmp_path, max_bytes=0)


def test_closed_spool_refuses_everything(tmp_path):
    sp = Spool(tmp_path)
    sp.append("samples", "r", b"x")
    sp.close()
    for op in (lambda: sp.append("samples", "r", b"y"), lambda: sp.peek(1), lambda: sp.ack(1)):
        with pytest.raises(RuntimeError, match="closed"):
            op()
    assert Spool(tmp_path).depth == 1  # still on disk for the next owner


def test_sequence_numbers_and_crash_after_ack_replays_never_loses(tmp_path):
    sp = Spool(tmp_path, segment_bytes=120)
    seqs = [sp.append("samples", "r", b"m%d" % i) for i in range(10)]
    assert seqs == list(range(10)) and sp.head == 0
    sp.ack(5)
    assert sp.head == 5 and sp.depth == 5
    # a crash now (no close): the cursor may lag the acks, so some acked records come back, never fewer
    again = Spool(tmp_path, segment_bytes=120)
    values = [r.value for r in again.peek(100)]
    assert values[-5:] == [b"m%d" % i for i in range(5, 10)] and 5 <= len(values) <= 10


def test_fsync_policy_is_validated(tmp_path):
    with pytest.raises(ValueError, match="fsync"):
        Spool(tmp_path, fsync_interval_s=-1)
    sp = Spool(tmp_path / "every", fsync_interval_s=0)  # every append forced to disk
    sp.append("samples", "r", b"x")
    assert sp.depth == 1
