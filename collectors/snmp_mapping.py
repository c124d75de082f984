"""Pure varbind mapping: what an agent answered -> readings in catalogue units -> batches.

No I/O here. The poller (or a test reading an `.snmprec` file) hands in a `Snapshot`: the
scalar instances it got and, for every walked table column, the rows by index suffix. Values
are plain Python (`int`, `float`, `str`); anything else, or a string that is not a number
where a number is expected, becomes a problem string, never an exception.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from dcops.batch import Batch
from dcops.catalogue import MEASUREMENTS, METRICS

from dcops.collectors.snmp_profiles import Case, Profile, Related, Sensor

__all__ = ["Reading", "Snapshot", "map_snapshot", "readings_to_batches", "snapshot_from_pairs"]


@dataclass(frozen=True)
class Reading:
    metric: str
    unit: str
    index: str
    description: str
    value: float
    oid: str

    def to_dict(self) -> dict:
        return {"metric": self.metric, "unit": self.unit, "index": self.index,
                "description": self.description, "value": self.value, "oid": self.oid}


@dataclass
class Snapshot:
    """What one poll got: scalar OID -> value, and column root OID -> {row suffix: value}."""

    scalars: dict[str, object] = field(default_factory=dict)
    tables: dict[str, dict[str, object]] = field(default_factory=dict)


def snapshot_from_pairs(profile: Profile, pairs: Mapping[str, object]) -> Snapshot:
    """Arrange a flat {oid: value} (e.g. a recording) the way the poller would see it."""
    snap = Snapshot()
    for oid in profile.get_oids:
        if oid in pairs:
            snap.scalars[oid] = pairs[oid]
    roots = profile.walk_roots
    for root in roots:
        snap.tables[root] = {}
    prefix_of = {r + ".": r for r in roots}
    for oid, value in pairs.items():
        parts = oid.split(".")
        for n in range(len(parts) - 1, 1, -1):
            root = prefix_of.get(".".join(parts[:n]) + ".")
            if root is not None:
                snap.tables[root][".".join(parts[n:])] = value
    return snap


class _Groups(dict):
    def __missing__(self, key):
        return ""


def _fmt(template: str, groups: Mapping[str, str]) -> str:
    try:
        return template.format_map(groups)
    except (ValueError, IndexError):
        return template


def _number(value) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if isinstance(value, str):
        try:
            x = float(value.strip())
        except ValueError:
            return None
        return x if math.isfinite(x) else None
    return None


def _related(snap: Snapshot, rel: Related | None, suffix_tpl: str | None, groups) -> object:
    if rel is None:
        return None
    sfx = _fmt(suffix_tpl, groups) if suffix_tpl else groups["suffix"]
    return snap.tables.get(rel.oid, {}).get(sfx)


def _row(sensor: Sensor, snap: Snapshot, suffix: str, raw, problems: list[str]) -> Reading | None:
    groups = _Groups(suffix=suffix)
    if sensor.suffix is not None:
        m = sensor.suffix.fullmatch(suffix)
        if m is None:
            return None
        groups.update({k: v for k, v in m.groupdict().items() if v is not None})
    label = _related(snap, sensor.label, sensor.label.suffix if sensor.label else None, groups)
    groups["label"] = str(label).strip() if label is not None else ""
    metric, convert, scale, index_t, descr_t = sensor.metric, sensor.convert, sensor.scale, sensor.index, sensor.descr
    if sensor.select is not None:
        case: Case | None = None
        sel = _related(snap, sensor.select, sensor.select.suffix, groups)
        sel = "" if sel is None else str(sel).strip()
        for rx, c in sensor.select.by_label:  # matched against "label|selector value"
            if rx.search(f"{groups['label']}|{sel}"):
                case = c
                break
        if case is None:
            case = sensor.select.cases.get(sel)
        if case is None or case.metric is None:
            return None
        metric, convert, scale = case.metric, case.convert, case.scale
        index_t = case.index if case.index is not None else index_t
        descr_t = case.descr if case.descr is not None else descr_t
    oid = f"{sensor.oid}.{suffix}" if not sensor.scalar else sensor.oid
    x = _number(raw)
    if x is None:
        problems.append(f"{oid}: expected a number for {metric}, got {type(raw).__name__} {str(raw)[:40]!r}")
        return None
    if x in sensor.skip:
        return None
    if sensor.values:
        x = sensor.values.get(str(int(x)))
        if x is None:
            return None
    for f in sensor.factors:
        fv = _number(_related(snap, f, f.suffix, groups))
        if fv is None:
            return None
        if f.op == "divide":
            if fv == 0:
                return None
            scale = scale / fv
        elif f.op == "pow10neg":
            scale = scale * 10.0 ** (-fv)
        else:
            mult = f.map.get(str(int(fv)))
            if mult is None:
                return None
            scale = scale * mult
    value = x * scale * convert.factor + convert.offset
    description = groups["label"] or _fmt(descr_t, groups) or METRICS[metric].description
    return Reading(metric, METRICS[metric].unit, _fmt(index_t, groups), description, value, oid)


def map_snapshot(profile: Profile, snap: Snapshot) -> tuple[list[Reading], list[str]]:
    """Readings for every sensor of `profile` the snapshot answers, and the problems met."""
    readings: list[Reading] = []
    problems: list[str] = []
    for s in profile.sensors:
        if s.scalar:
            if s.oid in snap.scalars:
                r = _row(s, snap, "0", snap.scalars[s.oid], problems)
                if r is not None:
                    readings.append(r)
            continue
        for suffix, raw in snap.tables.get(s.oid, {}).items():
            r = _row(s, snap, suffix, raw, problems)
            if r is not None:
                readings.append(r)
    return readings, problems


def readings_to_batches(readings: list[Reading], tags: Mapping[str, str], time_ns: int) -> list[Batch]:
    """One batch per measurement: a row per index, a column per metric (NaN where absent)."""
    by_meas: dict[str, dict[str, dict[str, float]]] = {}
    for r in readings:
        meas = METRICS[r.metric].measurement
        by_meas.setdefault(meas, {}).setdefault(r.index, {})[r.metric] = r.value
    out = []
    for meas, rows in by_meas.items():
        indexes = list(rows)
        n = len(indexes)
        metrics = list(dict.fromkeys(m for row in rows.values() for m in row))
        tag_cols = {}
        for t in MEASUREMENTS[meas].tags:
            tag_cols[t] = np.array(indexes, dtype=object) if t == "index" else np.full(n, str(tags.get(t, "")), dtype=object)
        fields = {m: np.array([rows[i].get(m, np.nan) for i in indexes], dtype=np.float64) for m in metrics}
        out.append(Batch(meas, np.full(n, int(time_ns), dtype=np.int64), tag_cols, fields))
    return out
