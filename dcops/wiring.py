"""Service wiring: build the bus and store a role's settings name.

`open_bus(settings.bus, client_id)` returns the in-process bus (shared by every role that runs
as a thread of this process) or a `KafkaBus`. Each Kafka producer process spools to its own
directory `<spool_dir>/<client_id>`; when that spool is held by a live process, the next free
`<client_id>-N` is used, so a restarted process picks up the spool a crashed one left behind.
"""

from __future__ import annotations

import threading

from dcops.bus import Bus, InProcessBus
from dcops.store import open_store

__all__ = ["open_bus", "open_store"]

_embedded_lock = threading.Lock()
_embedded: list[InProcessBus] = []


class _SharedInProcessBus:
    """The process's in-process bus; `close()` leaves it open for the other roles."""

    def __init__(self, bus: InProcessBus) -> None:
        self._bus = bus

    def publish(self, topic, key, value):
        self._bus.publish(topic, key, value)

    def flush(self, timeout_s=None):
        self._bus.flush(timeout_s)

    def consumer(self, topics, group):
        return self._bus.consumer(topics, group)

    def close(self):
        return None


def open_bus(settings, client_id: str = "dcops", **options) -> Bus:
    if settings.kind == "inprocess":
        with _embedded_lock:
            if not _embedded:
                _embedded.append(InProcessBus())
            return _SharedInProcessBus(_embedded[0])
    if settings.kind == "kafka":
        from dcops.kafka_bus import KafkaBus, SpoolInUse

        for i in range(1, 65):
            try:
                return KafkaBus(settings, client_id if i == 1 else f"{client_id}-{i}", **options)
            except SpoolInUse:
                continue
        raise RuntimeError(f"64 processes already hold spools named {client_id}* in {settings.spool_dir}")
    raise ValueError(f"unknown bus kind {settings.kind!r} (inprocess or kafka)")
