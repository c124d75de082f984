"""The bus seam: topics of binary messages, consumer groups, commits after processing.

The interface mirrors Kafka's so the same stage code runs on either implementation:

- `publish(topic, key, value)`: messages with one key keep their order (Kafka: one partition
  per key; here: one log per topic).
- `consumer(topics, group)`: each group sees every message once it commits; a consumer that
  crashes before `commit()` gets the uncommitted messages again (at-least-once).

`InProcessBus` is the embedded default: an append-only log per topic with per-group committed
offsets, trimmed once every group has committed past an entry. Messages are bytes (see
`dcops.codec`), exactly what Kafka would carry.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import NamedTuple, Protocol, Sequence

import numpy as np

from dcops.batch import Batch, Event
from dcops.codec import encode_batch, encode_events

__all__ = [
    "TOPIC_SAMPLES", "TOPIC_EVENTS", "TOPIC_FINDINGS", "TOPIC_ALARMS", "TOPIC_DEADLETTER",
    "Bus", "Consumer", "InProcessBus", "Message", "publish_batch", "publish_by_rack", "publish_events",
]

TOPIC_SAMPLES = "samples"
TOPIC_EVENTS = "events"
TOPIC_FINDINGS = "findings"
TOPIC_ALARMS = "alarms"
TOPIC_DEADLETTER = "deadletter"


class Message(NamedTuple):
    topic: str
    key: str
    value: bytes
    offset: int
    partition: int = 0


class Consumer(Protocol):
    def poll(self, timeout_s: float = 1.0, max_records: int = 100) -> list[Message]: ...
    def commit(self) -> None: ...
    def close(self) -> None: ...
    def assignment(self) -> set[tuple[str, int]]: ...
    def owned(self, topic: str, keys) -> list[str]: ...


class Bus(Protocol):
    def publish(self, topic: str, key: str, value: bytes) -> None: ...
    def flush(self, timeout_s: float | None = None) -> None: ...
    def consumer(self, topics: str | Sequence[str], group: str) -> Consumer: ...
    def close(self) -> None: ...


def publish_batch(bus: Bus, batch: Batch, key: str = "", topic: str = TOPIC_SAMPLES) -> None:
    """Publish a collector's batch. Impossible values are refused at this edge (dcops.validate):
    they travel as `telemetry_rejected` events naming device, metric and value, not as samples."""
    from dcops.validate import check_batch, rejection_events

    clean, rejected = check_batch(batch)
    bus.publish(topic, key, encode_batch(clean))
    if rejected:
        publish_events(bus, rejection_events(batch, rejected), key=key)


def publish_by_rack(bus: Bus, batch: Batch, topic: str = TOPIC_SAMPLES, tag: str = "rack") -> int:
    """Publish one message per rack (the partition key), so each rack's rows stay in order."""
    col = batch.tags.get(tag)
    if col is None or len(batch) == 0:
        publish_batch(bus, batch, key="", topic=topic)
        return 1
    keys, inverse = np.unique(col.astype(str), return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(len(keys) + 1))
    for i, key in enumerate(keys):
        publish_batch(bus, batch.select(order[bounds[i]:bounds[i + 1]]), key=str(key), topic=topic)
    return len(keys)


def publish_events(bus: Bus, events: Sequence[Event], key: str = "", topic: str = TOPIC_EVENTS) -> None:
    if events:
        bus.publish(topic, key, encode_events(events))


class _Log:
    """One topic: messages with absolute offsets; `base` is the offset of entries[0]."""

    def __init__(self) -> None:
        self.entries: deque[tuple[str, bytes]] = deque()
        self.base = 0
        self.committed: dict[str, int] = {}  # group -> next offset to read after restart

    @property
    def end(self) -> int:
        return self.base + len(self.entries)

    def trim(self) -> None:
        if not self.committed:
            return
        low = min(self.committed.values())
        while self.base < low and self.entries:
            self.entries.popleft()
            self.base += 1


class InProcessBus:
    """Embedded bus. Thread-safe; bounded by `max_messages` per topic (publish blocks when full)."""

    def __init__(self, max_messages: int = 10_000) -> None:
        self._logs: dict[str, _Log] = {}
        self._cond = threading.Condition()
        self._max = max_messages
        self._closed = False
        self.published = 0

    def _log(self, topic: str) -> _Log:
        log = self._logs.get(topic)
        if log is None:
            log = self._logs[topic] = _Log()
        return log

    def publish(self, topic: str, key: str, value: bytes) -> None:
        with self._cond:
            if self._closed:
                raise RuntimeError("bus is closed")
            log = self._log(topic)
            # Back-pressure: wait while every subscribed group lags by max_messages.
            while log.committed and len(log.entries) >= self._max and not self._closed:
                self._cond.wait(0.5)
                log.trim()
            log.entries.append((key, bytes(value)))
            self.published += 1
            self._cond.notify_all()

    def flush(self, timeout_s: float | None = None) -> None:
        return None

    def consumer(self, topics: str | Sequence[str], group: str) -> "InProcessConsumer":
        if isinstance(topics, str):
            topics = (topics,)
        with self._cond:
            for t in topics:
                log = self._log(t)
                log.committed.setdefault(group, log.base)
        return InProcessConsumer(self, tuple(topics), group)

    def lag(self, topic: str, group: str) -> int:
        with self._cond:
            log = self._log(topic)
            return log.end - log.committed.get(group, log.base)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class InProcessConsumer:
    def __init__(self, bus: InProcessBus, topics: tuple[str, ...], group: str) -> None:
        self._bus = bus
        self._topics = topics
        self._group = group
        with bus._cond:
            self._position = {t: bus._log(t).committed[group] for t in topics}
        self._closed = False

    def poll(self, timeout_s: float = 1.0, max_records: int = 100) -> list[Message]:
        bus = self._bus
        with bus._cond:
            out = self._take(max_records)
            if not out and timeout_s > 0 and not bus._closed:
                bus._cond.wait(timeout_s)
                out = self._take(max_records)
            return out

    def _take(self, max_records: int) -> list[Message]:
        out: list[Message] = []
        for t in self._topics:
            log = self._bus._logs[t]
            pos = max(self._position[t], log.base)
            while pos < log.end and len(out) < max_records:
                key, value = log.entries[pos - log.base]
                out.append(Message(t, key, value, pos))
                pos += 1
            self._position[t] = pos
        return out

    def assignment(self) -> set[tuple[str, int]]:
        """{(topic, 0)}: an in-process log is one partition, and its one consumer per group holds it."""
        return {(t, 0) for t in self._topics}

    def owned(self, topic: str, keys) -> list[str]:
        """Every key of a subscribed topic comes to this consumer (see `KafkaBusConsumer.owned`)."""
        return list(keys) if topic in self._topics else []

    def lag(self) -> dict[tuple[str, int], int]:
        """{(topic, 0): messages published and not yet handed to this consumer} (for metrics)."""
        with self._bus._cond:
            logs = self._bus._logs
            return {(t, 0): max(0, logs[t].end - max(self._position[t], logs[t].base)) for t in self._topics}

    def commit(self) -> None:
        bus = self._bus
        with bus._cond:
            for t, pos in self._position.items():
                log = bus._logs[t]
                log.committed[self._group] = max(log.committed.get(self._group, 0), pos)
                log.trim()
            bus._cond.notify_all()

    def close(self) -> None:
        """Leave without committing: uncommitted messages are delivered again to the group."""
        self._closed = True
