"""A bounded on-disk write-ahead queue of bus messages: the Kafka producer's log of what is not
yet acknowledged by the broker.

Delivery semantics kept here:
- `append` writes a record to the tail segment before returning and returns its sequence number;
  the record is handed to the OS (`write` + `flush`) before `append` returns, so it survives a
  crash of this process at any moment (SIGKILL, OOM kill, a crash in a C extension);
- fsync policy (what survives a crash of the whole machine or a power loss): `fsync_interval_s`
  `0` forces every append to disk (`os.fsync`, slowest), a positive value forces the tail to
  disk at most that often from the append path and on `close()` (default 1 s: a power loss
  loses at most the last second of samples), `None` leaves it to the OS (dirty pages are
  written within ~30 s on Linux). The cursor file is replaced atomically, at most every
  `cursor_interval_s` and on `close()`, and not fsynced: after a crash it may point before records
  already acknowledged, which replays them (harmless: at-least-once, idempotent store writes);
- records are replayed strictly in the order they were appended (`peek`), and only `ack(n)`
  moves the read cursor past them, after the broker acknowledged them; a crash between the
  broker's ack and `ack(n)` replays them again (at-least-once; the store's writes are
  idempotent);
- the spool is bounded by `max_bytes`; when full, `append` raises `SpoolFull` rather than
  dropping anything silently.

Layout: `<dir>/<seq:012d>.seg` segment files of records `u32 length, u32 crc32, payload`, payload
`u16 topic length, topic, u16 key length, key, value`; `<dir>/cursor` holds the segment and
byte offset of the next record to replay. A torn record at the tail (crash mid-append) is cut
off when the spool is opened.
"""

from __future__ import annotations

import os
import struct
from collections import deque
import threading
import time
import zlib
from pathlib import Path
from typing import NamedTuple

__all__ = ["Spool", "SpoolFull", "SpoolRecord"]

_REC = struct.Struct("<II")
_LEN = struct.Struct("<H")
_CURSOR = struct.Struct("<QQ")


class SpoolFull(RuntimeError):
    """The spool reached its byte limit; the message was not accepted."""


class SpoolRecord(NamedTuple):
    topic: str
    key: str
    value: bytes


def _pack(topic: str, key: str, value: bytes) -> bytes:
    t, k = topic.encode(), key.encode()
    payload = b"".join((_LEN.pack(len(t)), t, _LEN.pack(len(k)), k, bytes(value)))
    return _REC.pack(len(payload), zlib.crc32(payload)) + payload


def _unpack(payload: bytes) -> SpoolRecord:
    (tl,) = _LEN.unpack_from(payload, 0)
    topic = payload[2 : 2 + tl].decode()
    (kl,) = _LEN.unpack_from(payload, 2 + tl)
    key = payload[4 + tl : 4 + tl + kl].decode()
    return SpoolRecord(topic, key, payload[4 + tl + kl :])


class Spool:
    """Append-only segments with a persisted read cursor. Thread-safe."""

    def __init__(self, path: str | Path, max_bytes: int = 1 << 30, segment_bytes: int = 64 << 20,
                 fsync_interval_s: float | None = 1.0) -> None:
        if max_bytes <= 0:
            raise ValueError(f"spool max_bytes must be positive, got {max_bytes}")
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.max_bytes = int(max_bytes)
        self.segment_bytes = int(segment_bytes)
        if fsync_interval_s is not None and fsync_interval_s < 0:
            raise ValueError(f"spool fsync_interval_s must be >= 0 or None, got {fsync_interval_s}")
        self.fsync_interval_s = fsync_interval_s
        self._last_fsync = time.monotonic()
        self._head = 0  # sequence number of the oldest record (counted from this open)
        self._recs: deque[tuple[int, int]] = deque()  # (segment, bytes) of each waiting record, oldest first
        self.cursor_interval_s = 0.2
        self._cursor_written = 0.0
        self._lock = threading.Lock()
        self._depth = 0
        self._bytes = 0
        self._tail = None
        self._open()

    # ----- state ----------------------------------------------------------------------------
    def _seg(self, seq: int) -> Path:
        return self.path / f"{seq:012d}.seg"

    def _segments(self) -> list[int]:
        return sorted(int(p.stem) for p in self.path.glob("*.seg") if p.stem.isdigit())

    def _scan(self, seq: int, start: int) -> tuple[int, int]:
        """Count whole records in a segment from `start`; returns (records, end of last good one)."""
        data = self._seg(seq).read_bytes()
        pos, n = start, 0
        recs = self._recs
        while pos + _REC.size <= len(data):
            length, crc = _REC.unpack_from(data, pos)
            end = pos + _REC.size + length
            if end > len(data) or zlib.crc32(data[pos + _REC.size : end]) != crc:
                break
            recs.append((seq, end - pos))
            pos, n = end, n + 1
        return n, pos

    def _open(self) -> None:
        segs = self._segments()
        cur_seq, cur_off = self._read_cursor()
        for seq in segs:
            if seq < cur_seq:
                self._seg(seq).unlink()
        segs = [s for s in segs if s >= cur_seq]
        if not segs:
            segs = [cur_seq]
            self._seg(cur_seq).touch()
            cur_off = 0
        if segs[0] != cur_seq:
            cur_seq, cur_off = segs[0], 0
        self._read = (cur_seq, cur_off)
        for seq in segs:
            start = cur_off if seq == cur_seq else 0
            n, good = self._scan(seq, start)
            size = self._seg(seq).stat().st_size
            if good < size:  # torn tail from a crash mid-append: cut it off
                with open(self._seg(seq), "r+b") as f:
                    f.truncate(good)
            self._depth += n
            self._bytes += good - start
        self._tail_seq = segs[-1]
        self._tail = open(self._seg(self._tail_seq), "ab")

    def _read_cursor(self) -> tuple[int, int]:
        try:
            return _CURSOR.unpack((self.path / "cursor").read_bytes())
        except (FileNotFoundError, struct.error):
            return 0, 0

    def _write_cursor(self) -> None:
        tmp = self.path / "cursor.tmp"
        tmp.write_bytes(_CURSOR.pack(*self._read))
        os.replace(tmp, self.path / "cursor")

    @property
    def depth(self) -> int:
        """Records waiting to be replayed."""
        return self._depth

    @property
    def bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return self._depth

    # ----- operations -----------------------------------------------------------------------
    @property
    def head(self) -> int:
        """Sequence number of the oldest record (`append` numbers records from 0 at each open)."""
        return self._head

    def append(self, topic: str, key: str, value: bytes) -> int:
        """Write one record ahead; returns its sequence number. Raises `SpoolFull` when full."""
        rec = _pack(topic, key, value)
        with self._lock:
            self._check_open()
            if self._bytes + len(rec) > self.max_bytes:
                raise SpoolFull(f"spool {self.path} is full ({self._bytes} of {self.max_bytes} bytes,"
                                f" {self._depth} messages waiting for the broker)")
            if self._tail.tell() >= self.segment_bytes:
                self._tail.close()
                self._tail_seq += 1
                self._tail = open(self._seg(self._tail_seq), "ab")
            self._tail.write(rec)
            self._tail.flush()
            interval = self.fsync_interval_s
            if interval is not None and (interval == 0 or time.monotonic() - self._last_fsync >= interval):
                os.fsync(self._tail.fileno())
                self._last_fsync = time.monotonic()
            seq = self._head + self._depth
            self._recs.append((self._tail_seq, len(rec)))
            self._depth += 1
            self._bytes += len(rec)
            return seq

    def peek(self, max_records: int = 1000, max_bytes: int = 16 << 20) -> list[SpoolRecord]:
        """The oldest records, in order, without removing them."""
        out: list[SpoolRecord] = []
        with self._lock:
            self._check_open()
            seq, off = self._read
            taken = 0
            while len(out) < max_records and taken < max_bytes and seq <= self._tail_seq:
                with open(self._seg(seq), "rb") as f:
                    f.seek(off)
                    while len(out) < max_records and taken < max_bytes:
                        head = f.read(_REC.size)
                        if len(head) < _REC.size:
                            break
                        length, _crc = _REC.unpack(head)
                        out.append(_unpack(f.read(length)))
                        taken += _REC.size + length
                seq, off = seq + 1, 0
        return out

    def ack(self, n: int) -> None:
        """Drop the `n` oldest records (they reached the broker). No file is read: sizes are kept."""
        with self._lock:
            self._check_open()
            n = min(n, self._depth)
            self._head += n
            seq, off = self._read
            for _ in range(n):
                rseq, size = self._recs.popleft()
                if rseq != seq:  # the older segments are fully replayed
                    for s in range(seq, rseq):
                        self._seg(s).unlink(missing_ok=True)
                    seq, off = rseq, 0
                off += size
                self._bytes -= size
                self._depth -= 1
            self._read = (seq, off)
            if self._depth == 0 and self._tail is not None and self._tail.tell() >= self.segment_bytes // 16:
                # empty and the tail has grown: start a fresh segment (small ones are kept, so a
                # producer acknowledged message by message does not create a file per message)
                self._tail.close()
                for s in self._segments():
                    self._seg(s).unlink()
                self._tail_seq += 1
                self._read = (self._tail_seq, 0)
                self._tail = open(self._seg(self._tail_seq), "ab")
                self._bytes = 0
            now = time.monotonic()
            if now - self._cursor_written >= self.cursor_interval_s:
                self._write_cursor()
                self._cursor_written = now

    def _check_open(self) -> None:
        if self._tail is None:
            raise RuntimeError(f"spool {self.path} is closed")

    def close(self) -> None:
        with self._lock:
            if self._tail is not None:
                if self.fsync_interval_s is not None:
                    os.fsync(self._tail.fileno())
                self._tail.close()
                self._tail = None
                self._write_cursor()
