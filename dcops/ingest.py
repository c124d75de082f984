"""The ingest stage: bus -> store, committing offsets only after the store has the data.

Delivery semantics (kept here, next to the code):
- at-least-once: a message's offset is committed only after `store.write` returned, so a
  crash between write and commit replays the message; the store's idempotent writes make the
  replay harmless;
- a message that cannot be decoded goes to the dead-letter topic with the reason, and the
  worker carries on; the dead-letter publish happens before the commit, so it is not lost;
- when the store is unavailable the worker backs off (exponentially, capped) and retries the
  same messages without committing.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from dcops.batch import Batch, Event
from dcops.bus import TOPIC_DEADLETTER, TOPIC_EVENTS, TOPIC_SAMPLES, Bus, Message
from dcops.codec import CodecError, decode

__all__ = ["IngestStats", "IngestWorker"]

log = logging.getLogger(__name__)


@dataclass
class IngestStats:
    messages: int = 0
    values: int = 0
    events: int = 0
    dead_letters: int = 0
    store_errors: int = 0
    batches_written: int = 0
    last_write_s: float = 0.0
    started: float = field(default_factory=time.monotonic)


class IngestWorker:
    """Consume samples and events, write them to the store in bulk, then commit."""

    def __init__(self, bus: Bus, store, group: str = "ingest", topics: Sequence[str] = (TOPIC_SAMPLES, TOPIC_EVENTS),
                 max_records: int = 200, backoff_max_s: float = 10.0, sleep: Callable[[float], None] = time.sleep,
                 on_error: Callable[[Exception], None] | None = None) -> None:
        self.bus = bus
        self.store = store
        self.consumer = bus.consumer(list(topics), group)
        self.max_records = max_records
        self.backoff_max_s = backoff_max_s
        self.stats = IngestStats()
        self._sleep = sleep
        self._stop = threading.Event()
        self._on_error = on_error

    def _split(self, messages: list[Message]) -> tuple[list[Batch], list[Event], list[tuple[Message, str]]]:
        batches: list[Batch] = []
        events: list[Event] = []
        bad: list[tuple[Message, str]] = []
        for m in messages:
            try:
                obj = decode(m.value)
            except CodecError as exc:
                bad.append((m, str(exc)))
                continue
            if isinstance(obj, Batch):
                batches.append(obj)
            else:
                events.extend(obj)
        return batches, events, bad

    def process(self, messages: list[Message]) -> None:
        """Write one poll's worth of messages; retries the store until it accepts them."""
        batches, events, bad = self._split(messages)
        for m, reason in bad:
            envelope = json.dumps({"topic": m.topic, "partition": m.partition, "offset": m.offset,
                                   "key": m.key, "reason": reason, "stage": "ingest"}).encode()
            self.bus.publish(TOPIC_DEADLETTER, m.key, envelope + b"\n" + bytes(m.value))
            self.stats.dead_letters += 1
            log.warning("message %s[%d]@%d sent to dead-letter: %s", m.topic, m.partition, m.offset, reason)
        delay = 0.1
        while True:
            try:
                t0 = time.perf_counter()
                written = self.store.write(batches) if batches else 0
                if events:
                    self.store.write_events(events)
                self.stats.last_write_s = time.perf_counter() - t0
                break
            except Exception as exc:  # the store is down or refused: back off, keep the messages
                self.stats.store_errors += 1
                if self._on_error:
                    self._on_error(exc)
                log.warning("store write failed (%s); retrying in %.1fs, offsets not committed", exc, delay)
                if self._stop.is_set():
                    raise
                self._sleep(delay)
                delay = min(delay * 2, self.backoff_max_s)
        self.stats.messages += len(messages)
        self.stats.values += written
        self.stats.events += len(events)
        self.stats.batches_written += len(batches)

    def run_once(self, timeout_s: float = 0.5) -> int:
        messages = self.consumer.poll(timeout_s=timeout_s, max_records=self.max_records)
        if not messages:
            return 0
        self.process(messages)
        self.consumer.commit()
        return len(messages)

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:
                if self._stop.is_set():
                    break
                log.exception("ingest loop error; continuing")
                self._sleep(1.0)

    def drain(self, idle_polls: int = 2) -> None:
        """Process until the topics are empty (used by tests, benchmarks and shutdown)."""
        idle = 0
        while idle < idle_polls:
            idle = idle + 1 if self.run_once(timeout_s=0.05) == 0 else 0

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self._stop.set()
        self.consumer.close()
