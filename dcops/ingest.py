"""The ingest stage: bus -> store, committing offsets only after the store has the data.

Delivery semantics (kept here, next to the code):
- at-least-once: a poll's offsets are committed only after `store.write` returned for every
  message of that poll, so a crash between write and commit replays them; the store's
  idempotent writes make the replay harmless. Several workers in one group share the
  partitions; when one dies its uncommitted messages go to the others;
- poison isolation: every message is decoded and checked (`dcops.validate.frame_problem`: names a
  store would drop or refuse, such as `#accel`, numeric or null names, non-text tag values,
  times outside int64 nanoseconds, infinite values) before the store sees it. A message that
  fails, or whose data the store refuses for a reason retrying cannot fix (`StoreError` that is
  not `StoreUnavailable`, or a data error such as `ValueError`/`TypeError`/`OverflowError`
  from the store adapter), goes to the dead-letter topic with the reason; a refused poll is
  split in halves until the refused messages are alone, the rest is written and the offsets
  move on. The dead-letter publish happens before the commit, so it is not lost.
  `dcops_dead_letters_total` counts them and /healthz names the latest;
- the current-state view (`dcops.store.current`) is updated with a poll's batches only after
  `store.write` returned for them, so it never shows what the store does not hold; a failure
  to update it is logged and counted, never a reason to retry or dead-letter the write;
- when the store is unavailable (`StoreUnavailable`, or any other error) the worker backs off
  exponentially (capped at `backoff_max_s`) and retries the same messages without committing,
  for as long as it takes; `stop()` interrupts the wait, leaving the poll uncommitted.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from dcops import metrics as dcops_metrics
from dcops.batch import Batch, Event
from dcops.bus import TOPIC_DEADLETTER, TOPIC_EVENTS, TOPIC_SAMPLES, Bus, Message
from dcops.codec import CodecError, decode
from dcops.store.base import StoreError, StoreUnavailable
from dcops.store.current import current_view
from dcops.validate import frame_problem

__all__ = ["IngestStats", "IngestWorker", "IngestStopped", "ViewFollower", "dead_letter_envelope", "follow_view",
           "wait_for_store"]

log = logging.getLogger(__name__)

# What a store adapter raises for data it cannot take (never for an unreachable store).
_DATA_ERRORS = (ValueError, TypeError, AttributeError, KeyError, IndexError, OverflowError, UnicodeError)


class IngestStopped(RuntimeError):
    """`stop()` was called while the worker waited for the store; nothing was committed."""


@dataclass
class IngestStats:
    messages: int = 0
    values: int = 0
    events: int = 0
    dead_letters: int = 0
    store_errors: int = 0
    batches_written: int = 0
    commits: int = 0
    last_write_s: float = 0.0
    started: float = field(default_factory=time.monotonic)
    last_poll: float = field(default_factory=time.monotonic)  # monotonic time of the latest poll
    store_failing_since: float | None = None  # monotonic time of the first failed write of a streak
    last_dead_letter: str = ""  # the reason of the latest dead letter


def dead_letter_envelope(m: Message, reason: str, stage: str = "ingest") -> bytes:
    """A JSON header line (where it came from and why), a newline, then the original bytes."""
    header = json.dumps({"topic": m.topic, "partition": m.partition, "offset": m.offset, "key": m.key,
                         "reason": reason, "stage": stage}).encode()
    return header + b"\n" + bytes(m.value)


class IngestWorker:
    """Consume samples and events, write them to the store in bulk, then commit."""

    def __init__(self, bus: Bus, store, group: str = "ingest", topics: Sequence[str] = (TOPIC_SAMPLES, TOPIC_EVENTS),
                 max_records: int = 200, backoff_max_s: float = 10.0, sleep: Callable[[float], None] | None = None,
                 on_error: Callable[[Exception], None] | None = None, consumer=None, metrics=None) -> None:
        self.bus = bus
        self.store = store
        self.consumer = consumer if consumer is not None else bus.consumer(list(topics), group)
        self.max_records = max_records
        self.backoff_max_s = backoff_max_s
        self.stats = IngestStats()
        self.current = current_view(store)
        self._stop = threading.Event()
        self._sleep = sleep if sleep is not None else self._stop.wait
        self._on_error = on_error
        self.group = group
        self.metrics = metrics if metrics is not None else dcops_metrics.current()
        m, stage = self.metrics, {"stage": group}
        self._m_in, self._m_out = m.get("samples_in").labels(**stage), m.get("samples_out").labels(**stage)
        self._m_events, self._m_msgs = m.get("events_in").labels(**stage), m.get("messages_in")
        self._m_dead, self._m_err = m.get("dead_letters").labels(**stage), m.get("store_errors").labels(**stage)
        self._m_write = m.get("store_write_seconds").labels(**stage)

    # ----- decoding -------------------------------------------------------------------------
    @staticmethod
    def _split(messages: list[Message]) -> tuple[list[tuple[Message, Batch | list[Event]]], list[tuple[Message, str]]]:
        good, bad = [], []
        for m in messages:
            try:
                obj = decode(m.value)
            except CodecError as exc:
                bad.append((m, str(exc)))
                continue
            except Exception as exc:  # anything else a malformed frame triggers is still "corrupt"
                bad.append((m, f"undecodable: {type(exc).__name__}: {exc}"))
                continue
            problem = frame_problem(obj)
            if problem is None:
                good.append((m, obj))
            else:
                bad.append((m, f"invalid: {problem}"))
        return good, bad

    def _dead_letter(self, m: Message, reason: str) -> None:
        self.bus.publish(TOPIC_DEADLETTER, m.key, dead_letter_envelope(m, reason))
        self.stats.dead_letters += 1
        self.stats.last_dead_letter = f"{m.topic}[{m.partition}]@{m.offset}: {reason}"[:300]
        self._m_dead.inc()
        log.warning("message %s[%d]@%d sent to dead-letter: %s", m.topic, m.partition, m.offset, reason)

    # ----- writing --------------------------------------------------------------------------
    def _write(self, decoded: list[tuple[Message, Batch | list[Event]]]) -> int:
        batches = [obj for _, obj in decoded if isinstance(obj, Batch)]
        events = [e for _, obj in decoded if not isinstance(obj, Batch) for e in obj]
        t0 = time.perf_counter()
        written = self.store.write(batches) if batches else 0
        if events:
            self.store.write_events(events)
        if batches:
            self._update_current(batches)
        self.stats.last_write_s = time.perf_counter() - t0
        self._m_write.observe(self.stats.last_write_s)
        self._m_out.inc(written)
        self.stats.store_failing_since = None
        self.stats.batches_written += len(batches)
        self.stats.events += len(events)
        return written

    def _update_current(self, batches: list[Batch]) -> None:
        try:
            self.current.update(batches)
        except Exception as exc:  # the store has the data; the view catches up from it (sync)
            self.current.update_errors += 1
            if self.current.update_errors == 1:
                log.exception("current-state view update failed (%s); the store write stands", exc)

    def _write_until_accepted(self, decoded) -> None:
        """Write, backing off while the store is unavailable; dead-letter what it refuses."""
        delay = 0.1
        while True:
            try:
                self.stats.values += self._write(decoded)
                return
            except StoreUnavailable as exc:
                self._backoff(exc, delay)
            except (StoreError, *_DATA_ERRORS) as exc:
                reason = str(exc) if isinstance(exc, StoreError) else f"{type(exc).__name__}: {exc}"
                if len(decoded) == 1:
                    self._dead_letter(decoded[0][0], f"store refused: {reason[:500]}")
                    return
                half = len(decoded) // 2  # split to find the refused message(s); the rest is written
                self._write_until_accepted(decoded[:half])
                self._write_until_accepted(decoded[half:])
                return
            except Exception as exc:  # unknown failure: treat as unavailable, keep the messages
                self._backoff(exc, delay)
            delay = min(delay * 2, self.backoff_max_s)

    def _backoff(self, exc: Exception, delay: float) -> None:
        self.stats.store_errors += 1
        self._m_err.inc()
        if self.stats.store_failing_since is None:
            self.stats.store_failing_since = time.monotonic()
        if self._on_error:
            self._on_error(exc)
        log.warning("store write failed (%s); retrying in %.1fs, offsets not committed", exc, delay)
        if self._stop.is_set():
            raise IngestStopped("stopped while the store was unavailable; offsets not committed") from exc
        self._sleep(delay)
        if self._stop.is_set():
            raise IngestStopped("stopped while the store was unavailable; offsets not committed") from exc

    def process(self, messages: list[Message]) -> None:
        """Write one poll's worth of messages; returns once the store accepted (or refused) them all."""
        decoded, bad = self._split(messages)
        for topic in {m.topic for m in messages}:
            self._m_msgs.labels(stage=self.group, topic=topic).inc(sum(1 for m in messages if m.topic == topic))
        self._m_in.inc(sum(o.n_values for _, o in decoded if isinstance(o, Batch)))
        self._m_events.inc(sum(len(o) for _, o in decoded if not isinstance(o, Batch)))
        for m, reason in bad:
            self._dead_letter(m, reason)
        if decoded:
            self._write_until_accepted(decoded)
        self.stats.messages += len(messages)

    # ----- loop -----------------------------------------------------------------------------
    def run_once(self, timeout_s: float = 0.5) -> int:
        messages = self.consumer.poll(timeout_s=timeout_s, max_records=self.max_records)
        self.stats.last_poll = time.monotonic()
        dcops_metrics.observe_lag(self.metrics, self.group, self.consumer)
        if not messages:
            return 0
        self.process(messages)
        self.consumer.commit()
        self.stats.commits += 1
        return len(messages)

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except IngestStopped:
                break
            except Exception as exc:  # bus trouble (broker away...): nothing was committed; go on
                if self._stop.is_set():
                    break
                log.warning("ingest loop error (%s: %s); continuing", type(exc).__name__, exc,
                            exc_info=log.isEnabledFor(logging.DEBUG))
                self._stop.wait(1.0)

    def drain(self, idle_polls: int = 2, timeout_s: float = 0.05) -> None:
        """Process until the topics are empty (used by tests, benchmarks and shutdown)."""
        idle = 0
        while idle < idle_polls and not self._stop.is_set():
            idle = idle + 1 if self.run_once(timeout_s=timeout_s) == 0 else 0

    def health(self, stall_s: float = 60.0) -> dcops_metrics.Check:
        """For /healthz: failing while the store refuses writes, or when the loop stopped polling."""
        now, st = time.monotonic(), self.stats
        if st.store_failing_since is not None:
            return dcops_metrics.Check(False, f"store unavailable for {now - st.store_failing_since:.0f}s"
                                              f" ({st.store_errors} failed writes); offsets not committed")
        if now - st.last_poll > stall_s:
            return dcops_metrics.Check(False, f"no poll for {now - st.last_poll:.0f}s")
        detail = f"{st.messages} messages, {st.values} values written, {st.dead_letters} dead-lettered"
        if st.last_dead_letter:
            detail += f" (latest: {st.last_dead_letter})"
        return dcops_metrics.Check(True, detail)

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self._stop.set()
        self.consumer.close()


def wait_for_store(open_fn: Callable[[], object], stop: threading.Event, backoff_max_s: float = 10.0):
    """Open the store, waiting (with capped exponential backoff) while it is unreachable.

    Ingest waits for a store that is away at start exactly as it does for one that goes away
    later; `stop` ends the wait with `IngestStopped`.
    """
    delay, since = 0.5, time.monotonic()
    while True:
        try:
            return open_fn()
        except StoreUnavailable as exc:
            if delay == 0.5:
                log.warning("store unavailable at start (%s); waiting for it, nothing is consumed meanwhile", exc)
            else:
                log.info("store still unavailable after %.0fs (%s); retrying in %.1fs",
                         time.monotonic() - since, exc, delay)
            if stop.wait(delay):
                raise IngestStopped("stopped while waiting for the store") from None
            delay = min(delay * 2, backoff_max_s)


class ViewFollower:
    """Keeps a current-state view up to date in a process that does not ingest (a console or
    alerter in its own process, Kafka): a member of a consumer group of its own on `samples`,
    so it sees every rack, that decodes each batch and updates the view. It writes nothing and
    skips what ingest would dead-letter; its offsets are committed only to track its place (a
    restarted follower is rebuilt from the store first, then starts at the topic's end). Unlike
    ingest's hook it may show a value a moment before the store holds it."""

    def __init__(self, consumer, view, max_records: int = 1000) -> None:
        self.consumer = consumer
        self.view = view
        self.max_records = max_records
        self.batches = 0
        self._stop = threading.Event()

    def run_once(self, timeout_s: float = 0.5) -> int:
        messages = self.consumer.poll(timeout_s=timeout_s, max_records=self.max_records)
        if not messages:
            return 0
        good, _bad = IngestWorker._split(messages)
        batches = [obj for _, obj in good if isinstance(obj, Batch)]
        if batches:
            self.view.update(batches)
            self.batches += len(batches)
        self.consumer.commit()
        return len(messages)

    def run(self) -> None:
        """Follow until `stop()`; the consumer is closed by this thread, the one that polls it."""
        try:
            while not self._stop.is_set():
                try:
                    self.run_once()
                except Exception as exc:  # bus trouble: the view ages, readers see "no data", not an error
                    log.warning("view follower: %s: %s; continuing", type(exc).__name__, exc)
                    self._stop.wait(1.0)
        finally:
            self.consumer.close()

    def stop(self) -> None:
        self._stop.set()


def follow_view(settings, store, name: str) -> tuple[ViewFollower, threading.Thread, object] | None:
    """For a role process on Kafka that does not ingest: rebuild the store's current view from
    the store's most recent window, then follow `samples` (group `view.<name>.<host>.<pid>`,
    from the topic's end) in a thread. None on the in-process bus (ingest feeds the view)."""
    import os
    import socket

    from dcops.wiring import open_bus

    if settings.bus.kind != "kafka":
        return None
    view = current_view(store)
    try:
        view.rebuild(store, time.time_ns())
    except StoreError as exc:
        log.warning("current-state view not rebuilt at start (%s); following the bus only", exc)
    bus = open_bus(settings.bus, client_id=f"{name}-view")
    group = f"view.{name}.{socket.gethostname()}.{os.getpid()}"
    follower = ViewFollower(bus.consumer(TOPIC_SAMPLES, group, auto_offset_reset="latest"), view)
    view.update([])  # from now on the bus feeds it: readers stop catching up from the store
    thread = threading.Thread(target=follower.run, name=f"{name}-view-follower", daemon=True)
    thread.start()
    return follower, thread, bus


def run_role(cfg, stop: threading.Event) -> None:
    """The `ingest` role of `dcops up`: consume samples and events into the store until `stop`."""
    from dcops.wiring import open_bus, open_store

    settings = cfg.settings
    try:
        store = wait_for_store(lambda: open_store(settings.store), stop)
    except IngestStopped:
        log.info("ingest stopped before the store answered")
        return
    bus = open_bus(settings.bus, client_id="ingest")
    worker = IngestWorker(bus, store, max_records=500)
    try:  # after a restart the view (and the console threads reading it) is not empty
        rows = worker.current.rebuild(store, time.time_ns())
        log.info("current-state view rebuilt from the store's most recent window (%d rows)", rows)
    except StoreError as exc:  # readers catch up through sync once the store answers
        log.warning("current-state view not rebuilt at start (%s)", exc)
    worker.metrics.health.add("ingest", worker.health)
    thread = threading.Thread(target=worker.run, name="ingest", daemon=True)
    thread.start()
    from dcops.store.rollups import Housekeeping

    housekeeping = Housekeeping(store).start()  # DuckDB rollups and retention (InfluxDB does its own)
    try:
        stop.wait()
    finally:
        worker.stop()
        thread.join(timeout=30)
        housekeeping.stop()
        worker.close()
        bus.close()
        store.close()
        log.info("ingest stopped: %s", worker.stats)
