"""A collector that reads the simulator directly, for the measurements no protocol collector
serves yet in a given setup (and for benchmarks that isolate bus and store).

It publishes one columnar batch per measurement per step, keyed by rack where the
measurement has a rack tag (so one rack's data stays in one partition on Kafka), and the
simulator's operational events. Ground-truth events (`fault_injected`, `fault_cleared`) are
never published: detectors and alarms must find faults from telemetry.
"""

from __future__ import annotations

from typing import Callable, Iterable

from dcops.batch import Event
from dcops.bus import Bus, publish_batch, publish_by_rack, publish_events
from dcops.sim import Simulator

__all__ = ["SimCollector"]

GROUND_TRUTH = frozenset({"fault_injected", "fault_cleared"})


class SimCollector:
    name = "sim"

    def __init__(self, sim: Simulator, bus: Bus, measurements: Iterable[str] | None = None,
                 split_by_rack: bool = False, skip_event: Callable[[Event], bool] | None = None) -> None:
        self.sim = sim
        self.bus = bus
        self.measurements = None if measurements is None else frozenset(measurements)
        self.split_by_rack = split_by_rack
        self.skip_event = skip_event  # events another collector reports itself (e.g. the GPU agents' XIDs)
        self._cursor = sim.events_since(0)[1]
        self.values = 0
        self.batches = 0

    def collect(self) -> int:
        """Publish this step's readings and new events; returns the number of values."""
        n = 0
        for batch in self.sim.batches():
            if self.measurements is not None and batch.measurement not in self.measurements:
                continue
            if self.split_by_rack and "rack" in batch.tags and len(batch) > 1:
                self.batches += publish_by_rack(self.bus, batch)
            else:
                key = str(batch.tags["rack"][0]) if "rack" in batch.tags and len(batch) else batch.measurement
                publish_batch(self.bus, batch, key=key)
                self.batches += 1
            n += batch.n_values
        events, self._cursor = self.sim.events_since(self._cursor)
        events = [e for e in events if e.kind not in GROUND_TRUTH and not (self.skip_event and self.skip_event(e))]
        if events:
            publish_events(self.bus, events, key="events")
        self.values += n
        return n
