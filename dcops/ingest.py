"""The ingest stage: bus -> store, committing offsets only after the store has the data.

Delivery semantics (kept here, next to the code):
- at-least-once: a poll's offsets are committed only after `store.write` returned for every
  message of that poll, so a crash between write and commit replays them; the store's
  idempotent writes make the replay harmless. Several workers in one group share the
  partitions; when one dies its uncommitted messages go to the others;
- a message that cannot be decoded, or whose data the store refuses (`StoreError` that is not
  `StoreUnavailable`), goes to the dead-letter topic with the reason, and the worker carries on;
  the dead-letter publish happens before the commit, so it is not lost. A refused poll is
  retried message by message, so only the bad ones are dead-lettered;
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

__all__ = ["IngestStats", "IngestWorker", "IngestStopped", "dead_letter_envelope"]

log = logging.getLogger(__name__)


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
                good.append((m, decode(m.value)))
            except CodecError as exc:
                bad.append((m, str(exc)))
            except Exception as exc:  # anything else a malformed frame triggers is still "corrupt"
                bad.append((m, f"undecodable: {type(exc).__name__}: {exc}"))
        return good, bad

    def _dead_letter(self, m: Message, reason: str) -> None:
        self.bus.publish(TOPIC_DEADLETTER, m.key, dead_letter_envelope(m, reason))
        self.stats.dead_letters += 1
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
        self.stats.last_write_s = time.perf_counter() - t0
        self._m_write.observe(self.stats.last_write_s)
        self._m_out.inc(written)
        self.stats.store_failing_since = None
        self.stats.batches_written += len(batches)
        self.stats.events += len(events)
        return written

    def _write_until_accepted(self, decoded) -> None:
        """Write, backing off while the store is unavailable; dead-letter what it refuses."""
        delay = 0.1
        while True:
            try:
                self.stats.values += self._write(decoded)
                return
            except StoreUnavailable as exc:
                self._backoff(exc, delay)
            except StoreError as exc:
                if len(decoded) == 1:
                    self._dead_letter(decoded[0][0], f"store refused: {exc}")
                    return
                for item in decoded:  # isolate the refused message(s)
                    self._write_until_accepted([item])
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
        return dcops_metrics.Check(True, f"{st.messages} messages, {st.values} values written")

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self._stop.set()
        self.consumer.close()


def run_role(cfg, stop: threading.Event) -> None:
    """The `ingest` role of `dcops up`: consume samples and events into the store until `stop`."""
    from dcops.wiring import open_bus, open_store

    settings = cfg.settings
    bus = open_bus(settings.bus, client_id="ingest")
    store = open_store(settings.store)
    worker = IngestWorker(bus, store, max_records=500)
    worker.metrics.health.add("ingest", worker.health)
    thread = threading.Thread(target=worker.run, name="ingest", daemon=True)
    thread.start()
    try:
        stop.wait()
    finally:
        worker.stop()
        thread.join(timeout=30)
        worker.close()
        bus.close()
        store.close()
        log.info("ingest stopped: %s", worker.stats)
