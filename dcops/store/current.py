"""The current state of the site, kept on the write path: the latest value and time of every
(series, metric), and per-group aggregates of it, read in time independent of history length.

Why: "what is every accelerator doing now" is the question the floor, the fleet page, the rack
page and the staleness checks ask on every refresh. Asking the store (`Store.latest`) scans the
newest window of every series, and its cost grows with history and with the fleet; at 100,000
accelerators it alone took 323 ms. This view answers it from arrays: one slot per series, one
value and one time column per field, updated column-wise by every batch ingest writes.

Who feeds it:
- the ingest worker, after `store.write` returned (`IngestWorker._write`): the view never shows
  a value the store does not have. Replays are harmless: a value older than the one held is
  ignored, one of the same time replaces it (idempotent, as the store is);
- after a restart, and in a process that does not ingest, from the store with range reads
  only: the most recent `window_s` (`rebuild`); on Kafka such a process (a console) then
  follows `samples` itself (`dcops.ingest.ViewFollower`); with neither ingest nor a follower,
  readers catch up with the rows at or after the newest time held (`sync`): one poll's rows,
  not history. Rows that arrive late with older timestamps (a collector's spool replayed
  after an outage) are missed by that last way (they are in the store's ranges); ingest and
  followers see them at once.

Semantics match `Store.latest` where the old readers relied on it: a column present in a batch
replaces the value (NaN included: the newest reading says "no value"); a field whose newest
value is older than `max_age_s` before the newest sample of its measurement reads as NaN; a
series with no fresh field is left out.

Views are shared per store location in a process (`current_view`), so the ingest thread of
`dcops up --threads` feeds the view its console and alerter threads read. Each measurement's
slots and columns live in a `SlotTable` (`dcops.store.current_table`).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from dcops.batch import Batch, concat_batches
from dcops.store.base import TIME_MAX_NS, StoreError, Where
from dcops.store.current_table import NEVER, SlotTable, series_ids

__all__ = ["CurrentState", "current_view", "series_ids", "staleness_view"]

log = logging.getLogger(__name__)
NS = 1_000_000_000


class CurrentState:
    """The latest value and time per (series, field) of every measurement written."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, sync_every_s: float = 1.0) -> None:
        self._tables: dict[str, SlotTable] = {}
        self._lock = threading.RLock()
        self._clock = clock
        self._fed_at: float | None = None  # when the write path last fed this view
        self._synced = False
        self._sync_every_s = sync_every_s
        self._synced_at: float | None = None
        self._memo: dict[tuple, tuple[int, object]] = {}
        self.version = 0  # bumps on every update; derived values are memoised per version
        self.update_errors = 0

    # ----- the write path ---------------------------------------------------------------------
    def update(self, batches: Sequence[Batch]) -> None:
        """Apply batches the store has accepted (called by ingest after `store.write`)."""
        self._apply(batches)
        self._fed_at = self._clock()

    def _apply(self, batches: Sequence[Batch]) -> None:
        by_measurement: dict[str, list[Batch]] = {}
        for b in batches:
            if len(b):
                by_measurement.setdefault(b.measurement, []).append(b)
        with self._lock:
            for m, group in by_measurement.items():
                # many small batches (one per rack) become one column-wise pass per measurement
                table = self._tables.get(m)
                if table is None:
                    table = self._tables[m] = SlotTable(m)
                table.update(group[0] if len(group) == 1 else concat_batches(group))
            self.version += 1

    def fed(self) -> bool:
        """Whether the write path of this process feeds the view (then readers never ask the
        store: what this process writes, it has). A process that runs one of several ingest
        workers of a site holds only that worker's racks: run the console in its own process
        (docs/deploy.md, "Beyond one node")."""
        return self._fed_at is not None

    # ----- catching up from the store (ranges only) ------------------------------------------
    def rebuild(self, store, now_ns: int, window_s: float = 120.0, measurements: Sequence[str] | None = None) -> int:
        """Load the most recent `window_s` of every measurement (or of `measurements`) from the
        store; returns rows read. When nothing is that recent (replayed or simulated time), the
        newest window the store holds is found with coarse count windows first (once, at start)."""
        rows = 0
        for m in _measurements(store) if measurements is None else measurements:
            start = int(now_ns - window_s * NS)
            got = _range(store, m, start, TIME_MAX_NS)
            if got is not None and not len(got):
                newest = _newest_ns(store, m)
                got = _range(store, m, int(newest - window_s * NS), TIME_MAX_NS) if newest is not None else None
            if got is not None and len(got):
                self._apply([got])
                rows += len(got)
        self._synced = True
        return rows

    def sync(self, store, now_ns: int | None = None, window_s: float = 120.0) -> int:
        """Bring a view nobody feeds in this process up to date: a rebuild the first time, then
        the rows at or after the newest time held, per measurement (at least one poll's rows:
        rows of one timestamp may arrive in parts). A fed view is left alone."""
        if self.fed():
            return 0
        if self._synced_at is not None and self._clock() - self._synced_at < self._sync_every_s:
            return 0  # several readers of one refresh share one catch-up
        self._synced_at = self._clock()
        now_ns = time.time_ns() if now_ns is None else int(now_ns)
        if not self._synced:
            return self.rebuild(store, now_ns, window_s)
        rows = 0
        for m in _measurements(store):
            table = self._tables.get(m)
            start = table.newest_ns if table is not None else int(now_ns - window_s * NS)
            got = _range(store, m, start, TIME_MAX_NS)
            if got is not None and len(got):
                self._apply([got])
                rows += len(got)
        return rows

    # ----- reads ------------------------------------------------------------------------------
    def measurements(self) -> list[str]:
        return sorted(self._tables)

    def fields(self, measurement: str) -> list[str]:
        table = self._tables.get(measurement)
        return list(table.values) if table is not None else []

    def newest_ns(self, measurement: str) -> int:
        """The newest sample time of the measurement (0 when none)."""
        table = self._tables.get(measurement)
        return int(table.newest_ns) if table is not None and table.n else 0

    def read(self, measurement: str, fields: Sequence[str] | None = None, where: Where | None = None,
             max_age_s: float = 900.0) -> Batch:
        """The latest value of every series of `measurement`, like `Store.latest`: fields older
        than `max_age_s` before the measurement's newest sample are NaN, series with no fresh
        field are left out; the row's time is its newest fresh field's. Unknown fields raise
        StoreError, an unknown measurement gives an empty batch."""
        with self._lock:
            table = self._tables.get(measurement)
            if table is None:
                return Batch.empty(measurement, fields=fields or ())
            flds = table.fields_of(fields)
            slots = table.where_slots(where)
            cutoff = table.newest_ns - int(max_age_s * NS)
            row_t = np.full(len(slots), NEVER, dtype=np.int64)
            out: dict[str, np.ndarray] = {}
            for f in flds:
                t = table.times[f][slots]
                fresh = t >= cutoff
                out[f] = np.where(fresh, table.values[f][slots], np.nan)
                row_t = np.maximum(row_t, np.where(fresh, t, NEVER))
            keep = row_t != NEVER
            if not flds:  # no field asked for: the series seen within the age, by any field
                for t in table.times.values():
                    row_t = np.maximum(row_t, np.where(t[slots] >= cutoff, t[slots], NEVER))
                keep = row_t != NEVER
            sel = slots[keep]
            return Batch(measurement, row_t[keep], {k: v[sel] for k, v in table.tags.items()},
                         {f: v[keep] for f, v in out.items()})

    def align(self, measurement: str, fields: Sequence[str], on: Sequence[str], keys: np.ndarray,
              max_age_s: float = 900.0, at: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """The fresh latest value of each field for each of `keys` (tags `on` joined with ':',
        e.g. ("device", "accel") -> "R1-01-S01:3", the inventory's ids), NaN where the key has
        no series, the field is unknown or stale: arrays in the caller's order, ready for
        vectorised pages. Pass the same `keys` array every time (an inventory's): the key ->
        series map is then built once, not per read. `at`: only the keys at these positions."""
        with self._lock:
            table = self._tables.get(measurement)
            n = len(keys) if at is None else len(at)
            if table is None:
                return {f: np.full(n, np.nan) for f in fields}
            slots = table.slots_of(tuple(on), keys)
            if at is not None:
                slots = slots[at]
            ok = slots >= 0
            s = slots[ok]
            cutoff = table.newest_ns - int(max_age_s * NS)
            out = {}
            for f in fields:
                v = np.full(n, np.nan)
                if f in table.values:
                    v[ok] = np.where(table.times[f][s] >= cutoff, table.values[f][s], np.nan)
                out[f] = v
            return out

    def align_rate(self, measurement: str, field: str, on: Sequence[str], keys: np.ndarray,
                   max_age_s: float = 900.0) -> np.ndarray:
        """`rate` of a counter for each of `keys`, as `align` places them (NaN where unknown)."""
        with self._lock:
            table = self._tables.get(measurement)
            out = np.full(len(keys), np.nan)
            if table is None or field not in table.prev:
                return out
            slots = table.slots_of(tuple(on), keys)
            ok = slots >= 0
            s = slots[ok]
            t, v = table.times[field][s], table.values[field][s]
            pv, pt = table.prev[field][0][s], table.prev[field][1][s]
            dt = (t - pt) / NS
            with np.errstate(invalid="ignore", divide="ignore"):
                r = np.where((pt != NEVER) & (dt > 0) & (v >= pv) & (t >= table.newest_ns - int(max_age_s * NS)),
                             (v - pv) / np.where(dt > 0, dt, 1), np.nan)
            out[ok] = r
            return out

    def rate(self, measurement: str, field: str, max_age_s: float = 900.0) -> Batch:
        """Per-second rise of a counter (`*_total`) between its last two samples, per series
        (NaN with one sample or after a reset)."""
        with self._lock:
            table = self._tables.get(measurement)
            if table is None or field not in table.prev:
                if table is not None and field in table.values:
                    raise StoreError(f"{field!r} is not a counter (*_total)")
                return Batch.empty(measurement, fields=(field,))
            slots = np.arange(table.n)
            t, v = table.times[field][: table.n], table.values[field][: table.n]
            keep = t >= table.newest_ns - int(max_age_s * NS)
            slots, t, v = slots[keep], t[keep], v[keep]
            pv, pt = table.prev[field]
            dt = (t - pt[slots]) / NS
            rise = v - pv[slots]
            with np.errstate(invalid="ignore", divide="ignore"):
                r = np.where((pt[slots] != NEVER) & (dt > 0) & (rise >= 0), rise / np.where(dt > 0, dt, 1), np.nan)
            tags = {k: c[slots] for k, c in table.tags.items()}
            return Batch(measurement, t, tags, {field: r})

    def aggregate(self, measurement: str, field: str, by: str, how: str = "mean", max_age_s: float = 900.0,
                  groups: Mapping[str, str] | None = None) -> pd.Series:
        """`how` (mean, min, max, sum, count) of the fresh values of `field` per value of tag
        `by` (per rack, per vendor...), or per `groups[tag value]` (per cooling zone: rack ->
        zone). Memoised until the next update, so every reader of a tick shares one pass."""
        key = (measurement, field, by, how, max_age_s, id(groups))
        with self._lock:
            hit = self._memo.get(key)
            if hit is not None and hit[0] == self.version:
                return hit[1]  # type: ignore[return-value]
            table = self._tables.get(measurement)
            if table is None or field not in table.values:
                return pd.Series(dtype=float)
            codes, uniques, _ = table.group_codes(by)
            if groups is not None:
                mapped = np.asarray([groups.get(v, "") for v in uniques.tolist()], dtype=object)
                gcodes, guniques = pd.factorize(mapped)
                codes, uniques = gcodes[codes], np.asarray(guniques, dtype=object)
            n = table.n
            fresh = table.times[field][:n] >= table.newest_ns - int(max_age_s * NS)
            v = table.values[field][:n]
            ok = fresh & ~np.isnan(v)
            s = pd.Series(v[ok]).groupby(codes[ok]).agg(how)
            out = pd.Series(s.to_numpy(np.float64), index=pd.Index(uniques[s.index.to_numpy()], dtype=object), name=field)
            self._memo[key] = (self.version, out)
            return out


def _measurements(store) -> list[str]:
    m = getattr(store, "measurements", ())
    return list(m() if callable(m) else m)


def _range(store, measurement: str, start_ns: int, end_ns: int) -> Batch | None:
    try:
        return store.query_range(measurement, None, start_ns, end_ns)
    except StoreError as exc:
        log.warning("current state: cannot read %s from the store (%s)", measurement, exc)
        return None


def _newest_ns(store, measurement: str) -> int | None:
    """A lower bound of the newest sample time of a measurement, within a minute, from count
    windows: a day, then a minute (reading from it minus the window covers at least the window)."""
    try:
        days = store.query_range(measurement, None, 0, TIME_MAX_NS, every_s=86400, agg="count", group_by=[])
        if not len(days):
            return None
        day = int(days.time_ns.max())
        mins = store.query_range(measurement, None, day, day + 86400 * NS, every_s=60, agg="count", group_by=[])
        return int(mins.time_ns.max()) if len(mins) else day  # the start of the newest minute: a lower bound
    except StoreError:
        return None


def staleness_view(open_store: Callable[[], object], spans: Mapping[str, float], now_ns: int) -> CurrentState | None:
    """For a restarted alerter: a view of the measurements its staleness checks watch
    (measurement -> longest wait), read back from the store over twice that wait, ranges only.
    None when there is nothing to watch or the store cannot be read: the checks then start
    empty, learning from the next samples, as they did before."""
    if not spans:
        return None
    try:
        store = open_store()
    except Exception as exc:  # unreachable, or a file another process holds: alert anyway
        log.warning("staleness checks start without history: store not readable (%s)", exc)
        return None
    try:
        view = CurrentState()
        for m, span in spans.items():
            view.rebuild(store, now_ns, window_s=2 * span, measurements=[m])
        return view
    except StoreError as exc:
        log.warning("staleness checks start without history: %s", exc)
        return None
    finally:
        store.close()


# ----- one view per store location in this process ------------------------------------------
_views: dict[tuple, CurrentState] = {}
_views_lock = threading.Lock()


def _location(store) -> tuple | None:
    """Where the store's data lives, when another store object may point at the same data."""
    path = getattr(store, "path", None)
    if isinstance(path, str) and path != ":memory:":
        return ("file", path)
    url = getattr(store, "url", None)
    if isinstance(url, str):
        return ("url", url, getattr(store, "database", ""), getattr(store, "rp", ""))
    return None


def current_view(store) -> CurrentState:
    """The current-state view of the data `store` holds, shared by every store object of this
    process that points at the same data (a file, a server and database); an in-memory store
    has its own."""
    view = getattr(store, "_dcops_current", None)
    if isinstance(view, CurrentState):
        return view
    loc = _location(store)
    with _views_lock:
        if loc is None:
            view = CurrentState()
        else:
            view = _views.get(loc)
            if view is None:
                view = _views[loc] = CurrentState()
    try:
        setattr(store, "_dcops_current", view)
    except AttributeError:  # a store that takes no attributes: the registry alone
        pass
    return view
