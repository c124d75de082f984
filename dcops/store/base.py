"""The store interface."""

from __future__ import annotations

import re
from typing import Mapping, Protocol, Sequence

from dcops.batch import Batch, Event

AGGREGATES = ("mean", "min", "max", "last", "first", "sum", "count")

Where = Mapping[str, str | Sequence[str]]

# Measurement, tag and field names every store keeps as they are (InfluxDB reads a line starting
# with '#' as a comment; DuckDB columns need identifiers): letters, digits, '_', not a digit first.
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# InfluxDB's timestamp range (int64 nanoseconds, both ends reserved), and the epoch as the floor.
TIME_MIN_NS, TIME_MAX_NS = 0, 9_223_372_036_854_775_806


def valid_name(name: object) -> bool:
    return isinstance(name, str) and NAME_RE.match(name) is not None


class StoreError(RuntimeError):
    """A query or write was refused (bad measurement, field, aggregate...)."""


class StoreUnavailable(StoreError):
    """The store could not be reached; the caller should back off and retry, losing nothing."""


class CurrentView(Protocol):
    """The current state of the site (`dcops.store.current`): latest value and time per
    (series, field) and per-group aggregates, kept on the write path. Readers of "now" (the
    console's floor, fleet and rack pages, staleness checks, the API) read this, in time
    independent of history length; the store itself is asked only for ranges."""

    def update(self, batches: Sequence[Batch]) -> None:
        """Apply batches the store has accepted (ingest, after `Store.write` returned)."""

    def sync(self, store: "Store", now_ns: int | None = None, window_s: float = 120.0) -> int:
        """Catch up from `store` with range reads when nothing feeds this view in this process."""

    def read(self, measurement: str, fields: Sequence[str] | None = None, where: Where | None = None,
             max_age_s: float = 900.0) -> Batch:
        """The latest value of every series, as `Store.latest` answers, without asking the store."""

    def aggregate(self, measurement: str, field: str, by: str, how: str = "mean", max_age_s: float = 900.0,
                  groups: Mapping[str, str] | None = None): ...

    def rate(self, measurement: str, field: str, max_age_s: float = 900.0) -> Batch: ...


class Store(Protocol):
    """Writes, and reads of ranges. What is true *now* is read from the store's current view
    (`dcops.store.current_view(store)`, a `CurrentView`), not from `latest`."""

    def write(self, batches: Sequence[Batch]) -> int:
        """Write batches in bulk; returns the number of field values written."""

    def write_events(self, events: Sequence[Event]) -> int: ...

    def latest(self, measurement: str, fields: Sequence[str] | None = None, where: Where | None = None,
               max_age_s: float = 900.0) -> Batch:
        """The newest row of every series of `measurement` seen in the last `max_age_s`. Its cost
        grows with history and fleet: for tools and tests; pages and checks read the current view."""

    def query_range(self, measurement: str, fields: Sequence[str], start_ns: int, end_ns: int,
                    every_s: float | None = None, agg: str = "mean", where: Where | None = None,
                    group_by: Sequence[str] | None = None) -> Batch:
        """Rows in [start_ns, end_ns), optionally aggregated into windows of `every_s` per
        series (or per `group_by` tags). Sorted by time."""

    def events(self, start_ns: int, end_ns: int, kinds: Sequence[str] | None = None,
               where: Where | None = None, limit: int = 10_000) -> list[Event]: ...

    def enforce_retention(self, now_ns: int) -> int:
        """Delete raw rows older than the retention; returns rows deleted."""

    def close(self) -> None: ...
