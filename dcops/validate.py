"""Telemetry sanity at the edge: values a sensor cannot mean are refused, loudly, and kept.

Every batch a collector publishes passes `check_batch`: each catalogued field is compared with
its valid range (per unit, or the metric's own `valid` range in the catalogue). A value
outside it (negative power, a humidity of 140 %RH, an infinite temperature) is not stored as
telemetry: it becomes NaN in the batch, and a `telemetry_rejected` event names the device, the
metric, the value and why, so nothing is silently lost and the operator sees the faulty
sensor. NaN itself means "not reported" and passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from dcops.batch import Batch, Event, Severity
from dcops.catalogue import METRICS
from dcops.store.base import TIME_MAX_NS, TIME_MIN_NS, valid_name

__all__ = ["Rejection", "check_batch", "frame_problem", "rejection_events", "valid_range", "MAX_EVENTS_PER_BATCH"]

INF = float("inf")
# Physical ranges per canonical unit (lo, hi); metrics may override with `Metric.valid`.
RANGE_BY_UNIT: dict[str, tuple[float, float]] = {
    "W": (0.0, 1e9), "VA": (0.0, 1e9), "Wh": (0.0, INF), "J": (0.0, INF), "MHz": (0.0, 1e5),
    "bytes": (0.0, INF), "count": (0.0, INF), "Hz": (0.0, 1e3), "V": (0.0, 1e5), "A": (0.0, 1e5),
    "s": (0.0, INF), "rpm": (0.0, 1e6), "Pa": (0.0, 1e6), "kPa": (0.0, 1e5), "m3/h": (0.0, 1e7),
    "l/min": (0.0, 1e6), "%": (0.0, 1000.0), "%RH": (0.0, 100.0), "degC": (-60.0, 200.0),
    "state": (-INF, INF), "VAR": (-INF, INF),
}
MAX_EVENTS_PER_BATCH = 50


def valid_range(metric_name: str) -> tuple[float, float] | None:
    m = METRICS.get(metric_name)
    if m is None:
        return None
    return m.valid if m.valid is not None else RANGE_BY_UNIT.get(m.unit, (-INF, INF))


@dataclass(frozen=True)
class Rejection:
    measurement: str
    metric: str
    row: int
    value: float
    reason: str


@lru_cache(maxsize=256)
def _ranges(names: tuple[str, ...]) -> tuple[tuple[int, ...], np.ndarray, np.ndarray]:
    """(positions of the fields that have a valid range, their lows, their highs), per field list."""
    at = [(j, valid_range(n)) for j, n in enumerate(names)]
    at = [(j, r) for j, r in at if r is not None]
    return (tuple(j for j, _ in at), np.array([[r[0]] for _, r in at], dtype=np.float64).reshape(-1, 1),
            np.array([[r[1]] for _, r in at], dtype=np.float64).reshape(-1, 1))


_STACK_ROWS = 4096  # up to this many rows all fields are checked in one pass over a stacked copy


def _bad_masks(cols: list[np.ndarray], lo: np.ndarray, hi: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """[(k, rows of cols[k] that are not finite or outside lo[k]..hi[k])] for the columns with any."""
    with np.errstate(invalid="ignore"):
        if len(cols) > 1 and len(cols[0]) <= _STACK_ROWS:  # small batches: a few array ops, not a few per field
            m = np.stack(cols)
            bad = np.isinf(m) | (m < lo) | (m > hi)
            return [(int(k), bad[k]) for k in np.flatnonzero(bad.any(axis=1))]
        out = []
        for k, col in enumerate(cols):
            bad = np.isinf(col) | (col < lo[k, 0]) | (col > hi[k, 0])
            if bad.any():
                out.append((k, bad))
        return out


def check_batch(batch: Batch) -> tuple[Batch, list[Rejection]]:
    """The batch with impossible values replaced by NaN, and what was rejected (vectorised)."""
    rejected: list[Rejection] = []
    names = tuple(batch.fields)
    at, lows, highs = _ranges(names)
    if not at or len(batch) == 0:
        return batch, rejected
    cols = list(batch.fields.values())
    fields = dict(batch.fields)
    found = _bad_masks([cols[j] for j in at], lows, highs)
    for k, bad in found:
        name, col = names[at[k]], cols[at[k]]
        lo, hi = float(lows[k, 0]), float(highs[k, 0])
        unit = METRICS[name].unit
        for i in np.flatnonzero(bad):
            v = float(col[i])
            why = "not finite" if np.isinf(v) else f"outside the valid range {lo:g}..{hi:g} {unit}"
            rejected.append(Rejection(batch.measurement, name, int(i), v, why))
        clean = col.copy()
        clean[bad] = np.nan
        fields[name] = clean
    if not found:
        return batch, rejected
    return Batch(batch.measurement, batch.time_ns, batch.tags, fields), rejected


def rejection_events(batch: Batch, rejected: list[Rejection], source: str = "validate") -> list[Event]:
    """One `telemetry_rejected` event per rejected value (at most MAX_EVENTS_PER_BATCH, the last
    one counting the rest), targeted at the row's device."""
    out = []
    shown = rejected[:MAX_EVENTS_PER_BATCH]
    for n, r in enumerate(shown):
        target = {k: str(v[r.row]) for k, v in batch.tags.items() if str(v[r.row])}
        where = "/".join(target.get(k, "") for k in ("hall", "row", "rack", "device", "accel", "index") if target.get(k))
        more = len(rejected) - len(shown) if n == len(shown) - 1 else 0
        out.append(Event(int(batch.time_ns[r.row]), "telemetry_rejected", source, target, Severity.WARNING,
                         f"{r.measurement}.{r.metric} = {r.value:g} from {where or 'unknown device'}: {r.reason}",
                         {"measurement": r.measurement, "metric": r.metric, "value": r.value if np.isfinite(r.value) else str(r.value),
                          "reason": r.reason, "more_rejected_in_batch": more}))
    return out


# ----- frames on the bus: what any store can keep, checked before the store -----------------
_MAX_TAG_VALUE = 4096


def _time_problem(t: object, what: str) -> str | None:
    if isinstance(t, bool) or not isinstance(t, (int, np.integer)):
        return f"{what}: time {t!r} is not an integer of nanoseconds"
    if not TIME_MIN_NS <= int(t) <= TIME_MAX_NS:
        return f"{what}: time {t} ns is outside the storable range (1970 .. 2262)"
    return None


def _batch_problem(b: Batch) -> str | None:
    where = f"batch {b.measurement!r}"
    if not valid_name(b.measurement):
        return f"{where}: measurement name {b.measurement!r} is not a name stores keep (letters, digits, '_')"
    for kind, names in (("tag", b.tags), ("field", b.fields)):
        for name in names:
            if not valid_name(name) or name == "time":
                return f"{where}: {kind} name {name!r} is not a name stores keep (letters, digits, '_')"
    both = set(b.tags) & set(b.fields)
    if both:
        return f"{where}: {sorted(both)[0]!r} is both a tag and a field"
    if len(b):
        lo, hi = int(b.time_ns.min()), int(b.time_ns.max())
        for t in (lo, hi):
            if (p := _time_problem(t, where)) is not None:
                return p
    for name, col in b.tags.items():
        try:
            distinct = pd.unique(col) if len(col) else ()
        except TypeError:  # unhashable values (objects, lists) are not text either
            return f"{where}: tag {name!r} has a value that is not text"
        for v in distinct:
            if not isinstance(v, str):
                return f"{where}: tag {name!r} has a value of type {type(v).__name__} ({str(v)[:60]!r}), not text"
            if len(v) > _MAX_TAG_VALUE or "\x00" in v:
                return f"{where}: tag {name!r} has a value longer than {_MAX_TAG_VALUE} characters or a NUL"
    for name, col in b.fields.items():
        if np.isinf(col).any():
            return f"{where}: field {name!r} holds an infinite value"
    return None


def _event_problem(i: int, e: Event) -> str | None:
    where = f"event {i} ({e.kind!r})"
    if (p := _time_problem(e.time_ns, where)) is not None:
        return p
    if not isinstance(e.kind, str) or not e.kind or len(e.kind) > 128 or not e.kind.isprintable():
        return f"{where}: kind must be printable text of 1..128 characters"
    for k, v in e.target.items():
        if not isinstance(k, str) or not isinstance(v, str) or len(v) > _MAX_TAG_VALUE or "\x00" in v:
            return f"{where}: target {str(k)[:60]!r}={str(v)[:60]!r} is not text"
    return None


def frame_problem(frame: Batch | list[Event]) -> str | None:
    """Why a decoded bus frame cannot be stored as it is (None when it can).

    Checked before the store so one bad record is dead-lettered with this reason instead of
    failing a bulk write for a reason retrying cannot fix: names a store would drop or refuse
    (`#accel` is a comment to InfluxDB), numeric or null names, non-text tag values, times
    outside int64 nanoseconds, infinite values.
    """
    if isinstance(frame, Batch):
        return _batch_problem(frame)
    for i, e in enumerate(frame):
        if (p := _event_problem(i, e)) is not None:
            return p
    return None
