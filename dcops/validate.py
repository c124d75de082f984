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

import numpy as np

from dcops.batch import Batch, Event, Severity
from dcops.catalogue import METRICS

__all__ = ["Rejection", "check_batch", "rejection_events", "valid_range", "MAX_EVENTS_PER_BATCH"]

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


def check_batch(batch: Batch) -> tuple[Batch, list[Rejection]]:
    """The batch with impossible values replaced by NaN, and what was rejected (vectorised)."""
    rejected: list[Rejection] = []
    fields = None
    for name, col in batch.fields.items():
        rng = valid_range(name)
        if rng is None:
            continue
        lo, hi = rng
        with np.errstate(invalid="ignore"):
            bad = np.isinf(col) | (col < lo) | (col > hi)
        if not bad.any():
            continue
        if fields is None:
            fields = dict(batch.fields)
        unit = METRICS[name].unit
        for i in np.flatnonzero(bad):
            v = float(col[i])
            why = "not finite" if np.isinf(v) else f"outside the valid range {lo:g}..{hi:g} {unit}"
            rejected.append(Rejection(batch.measurement, name, int(i), v, why))
        clean = col.copy()
        clean[bad] = np.nan
        fields[name] = clean
    if fields is None:
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
