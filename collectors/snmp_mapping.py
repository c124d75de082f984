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
from dcops.validate import valid_range

from dcops.collectors.snmp_profiles import Case, Profile, Related, Sensor

__all__ = ["Missing", "Reading", "Snapshot", "map_snapshot", "map_snapshot_full", "readings_to_batches",
           "sentinel_reason", "snapshot_from_pairs"]

# Raw values agents use for "no reading" whatever the MIB says (16/32/64-bit all-ones, INT_MIN/MAX).
SENTINELS = {65535: "65535 (16-bit 'unknown')", 2147483647: "2147483647 (INT32_MAX)",
             -2147483648: "-2147483648 (INT32_MIN)", 4294967295: "4294967295 (UINT32_MAX)",
             -32768: "-32768 (INT16_MIN)", 32767: "32767 (INT16_MAX)"}
SENTINEL_TEXT = ("notsupported", "not supported", "n/a", "na", "unknown", "none", "null", "-", "--", "")


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


@dataclass(frozen=True)
class Missing:
    """A sensor the agent answered for without a usable reading, and why (never a value)."""

    metric: str
    index: str
    oid: str
    reason: str
    raw: str = ""

    def to_dict(self) -> dict:
        return {"metric": self.metric, "index": self.index, "oid": self.oid, "missing": self.reason, "raw": self.raw}

    def __str__(self) -> str:
        return f"{self.oid}: {self.metric} missing: {self.reason}"


def sentinel_reason(raw, x: float | None) -> str | None:
    """Why a raw value is a "no reading" marker rather than a measurement (None: it is not)."""
    if x is None:
        text = raw.decode("latin-1") if isinstance(raw, bytes) else raw
        if isinstance(text, str) and text.strip().lower() in SENTINEL_TEXT:
            return f"agent says {text.strip()!r}"
        return None
    if x.is_integer() and int(x) in SENTINELS:
        return f"sentinel value {SENTINELS[int(x)]}"
    if abs(x) >= 9.2e18:  # 64-bit all-ones (1.8e19) / INT64 limits, or beyond
        return f"sentinel value {x:.4g} (64-bit limit or beyond)"
    return None


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
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:  # a garbage integer of hundreds of digits: "impossible", not a crash
            return math.inf if value > 0 else -math.inf
    if isinstance(value, float):
        return value
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


def _row(sensor: Sensor, snap: Snapshot, suffix: str, raw, problems: list[str]) -> Reading | Missing | None:
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
    index = _fmt(index_t, groups)
    if sensor.require is not None:
        state = _related(snap, sensor.require, sensor.require.suffix, groups)
        if state is None or str(state).strip() not in sensor.require.values:
            return Missing(metric, index, oid, f"{sensor.require.reason} ({sensor.require.oid}: {state})", str(raw)[:40])
    x = _number(raw)
    why = sentinel_reason(raw, x) if not sensor.values else None
    if why is None and x is not None and x in sensor.skip:
        why = f"value {raw} means 'not available' for this sensor (MIB)"
    if why is not None:
        return Missing(metric, index, oid, why, str(raw)[:40])
    if x is None:
        problems.append(f"{oid}: expected a number for {metric}, got {type(raw).__name__} {str(raw)[:40]!r}")
        return Missing(metric, index, oid, "not a number", str(raw)[:40])
    if sensor.values:
        code = str(int(x)) if x.is_integer() else str(x)
        mapped = sensor.values.get(code)
        if mapped is None:
            return Missing(metric, index, oid, f"state {code} is outside the mapped set {sorted(sensor.values)}", code)
        x = mapped
    for f in sensor.factors:
        fv = _number(_related(snap, f, f.suffix, groups))
        if fv is None:
            return Missing(metric, index, oid, f"no scale factor at {f.oid}", str(raw)[:40])
        if f.op == "divide":
            if fv == 0:
                return Missing(metric, index, oid, f"divisor {f.oid} is 0", str(raw)[:40])
            scale = scale / fv
        elif f.op == "multiply":
            scale = scale * fv
        elif f.op == "pow10neg":
            scale = scale * 10.0 ** (-fv)
        elif f.op == "signed_scale":  # n < 0: divide by -n; n > 0: multiply by n (Rittal CMC III)
            scale = scale / -fv if fv < 0 else scale * (fv or 1.0)
        else:
            mult = f.map.get(str(int(fv)))
            if mult is None:
                return Missing(metric, index, oid, f"scale code {int(fv)} at {f.oid} is not mapped", str(raw)[:40])
            scale = scale * mult
    scaled = x * scale
    if sensor.scale != 1.0 and scaled.is_integer() and int(scaled) in SENTINELS and not sensor.values:
        return Missing(metric, index, oid, f"sentinel value {SENTINELS[int(scaled)]} after scaling raw {raw}", str(raw)[:40])
    value = scaled * convert.factor + convert.offset
    rng = valid_range(metric)
    if rng is not None and not (rng[0] <= value <= rng[1]):
        return Missing(metric, index, oid, f"{value:.6g} {METRICS[metric].unit} is outside the possible range "
                       f"{rng[0]:g}..{rng[1]:g}", str(raw)[:40])
    description = groups["label"] or _fmt(descr_t, groups) or METRICS[metric].description
    return Reading(metric, METRICS[metric].unit, index, description, value, oid)


def map_snapshot_full(profile: Profile, snap: Snapshot) -> tuple[list[Reading], list[Missing], list[str]]:
    """Readings for every sensor of `profile` the snapshot answers, the sensors answered without
    a usable value (sentinels, unmapped states, impossible values) and the problems met."""
    readings: list[Reading] = []
    missing: list[Missing] = []
    problems: list[str] = []
    seen: dict[tuple[str, str], Reading] = {}

    def add(r) -> None:
        if r is None:
            return
        if isinstance(r, Missing):
            missing.append(r)
            return
        key = (r.metric, r.index)
        first = seen.get(key)
        if first is not None:  # the same quantity from a second OID (vendor table and standard MIB): keep the first
            if not math.isclose(first.value, r.value, rel_tol=0.01, abs_tol=1e-6):
                problems.append(f"{r.oid}: {r.metric} index {r.index!r} = {r.value:g}, but {first.oid} says {first.value:g}; "
                                f"kept {first.oid}")
            return
        seen[key] = r
        readings.append(r)

    for s in profile.sensors:
        if s.scalar:
            if s.oid in snap.scalars:
                add(_row(s, snap, "0", snap.scalars[s.oid], problems))
            continue
        for suffix, raw in snap.tables.get(s.oid, {}).items():
            add(_row(s, snap, suffix, raw, problems))
    return readings, missing, problems


def map_snapshot(profile: Profile, snap: Snapshot) -> tuple[list[Reading], list[str]]:
    """Readings and problems (missing sensors included as problem lines)."""
    readings, missing, problems = map_snapshot_full(profile, snap)
    return readings, problems + [str(m) for m in missing]


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
