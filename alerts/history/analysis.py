"""Incident history for reliability engineers: response times, recurring offenders, telemetry
around a past incident, and "have we seen this before?".

- `incident_facts(db)` reads incidents with their root alarm into flat `IncidentFacts`;
- `response_times(facts, by=...)`: MTTA (opened -> first acknowledged) and MTTR (opened ->
  resolved, or closed when it was closed without a resolve) by severity, cause, area or ISO week;
- `recurring(facts)`: devices and probable causes with more than one incident;
- `telemetry_around(store, inventory, facts)`: the metrics that matter for the root component's
  kind (`KIND_METRICS`, a data table), before and after the incident opened;
- `similar_incidents(target, facts, signatures)`: scikit-learn `NearestNeighbors` over the
  incident's signature: the root component's kind and probable cause, the set of probable
  causes and of rules among all its alarms, the kinds of components that alarmed, and a coarse
  telemetry shape (relative change of each `KIND_METRICS` series across the opening); where it
  happened (device, row, hall) counts a little, so "this again, elsewhere" ranks first and
  "this again, here" breaks ties. Many analytics alarms share one probable cause; the rest of
  the signature is what tells a stuck sensor from a throttling NPU.

The postmortem export (Markdown) is in `dcops.alerts.history.postmortem`.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Mapping, Sequence

import numpy as np
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from dcops.alerts.storage.tables import AlarmRow, IncidentRow
from dcops.alerts.runbooks.checks import resolve_scope, scope_where
from dcops.alerts.runbooks.models import Scope
from dcops.alarm_types import SEVERITY_RANK, PerceivedSeverity
from dcops.catalogue import METRICS
from dcops.store.base import Store, StoreError
from dcops.topology import Inventory

__all__ = ["IncidentFacts", "ResponseStats", "Recurring", "Series", "Similar", "GROUPINGS", "KIND_METRICS",
           "incident_facts", "response_times", "recurring", "telemetry_around", "telemetry_signature",
           "similar_incidents", "iso_week"]

_NS = 1_000_000_000


@dataclass(frozen=True)
class IncidentFacts:
    id: str
    title: str
    state: str
    severity: str
    cause: str
    component: str
    kind: str
    hall: str
    row: str
    device: str
    opened_ns: int
    acknowledged_ns: int | None
    resolved_ns: int | None
    closed_ns: int | None
    causes: tuple[str, ...] = ()          # probable causes of all the incident's alarms (root's when empty)
    affected_kinds: tuple[str, ...] = ()  # kinds of the components that alarmed (root's when empty)
    rules: tuple[str, ...] = ()           # rules that raised its alarms
    vendor: str = ""                      # the root accelerator's vendor (an NVIDIA GPU is not an NPU)
    words: tuple[str, ...] = ()           # what its alarms say (see `_problem_words`)

    @property
    def cause_set(self) -> frozenset[str]:
        return frozenset(self.causes or ((self.cause,) if self.cause else ()))

    @property
    def kind_set(self) -> frozenset[str]:
        return frozenset(self.affected_kinds or ((self.kind,) if self.kind else ()))

    @property
    def tta_s(self) -> float | None:
        return None if self.acknowledged_ns is None else (self.acknowledged_ns - self.opened_ns) / _NS

    @property
    def ttr_s(self) -> float | None:
        end = self.resolved_ns if self.resolved_ns is not None else self.closed_ns
        return None if end is None else (end - self.opened_ns) / _NS

    @property
    def area(self) -> str:
        return "/".join(x for x in (self.hall, self.row) if x) or self.component


def iso_week(ns: int) -> str:
    y, w, _ = datetime.fromtimestamp(ns / _NS, tz=timezone.utc).isocalendar()
    return f"{y}-W{w:02d}"


GROUPINGS: Mapping[str, Callable[[IncidentFacts], str]] = {
    "all": lambda f: "all",
    "severity": lambda f: f.severity,
    "cause": lambda f: f.cause,
    "area": lambda f: f.area,
    "week": lambda f: iso_week(f.opened_ns),
    "kind": lambda f: f.kind,
}


def incident_facts(db: Engine, inventory: Inventory | None = None, since_ns: int | None = None,
                   until_ns: int | None = None) -> list[IncidentFacts]:
    """Incidents opened in [since, until) with their root alarm's cause and place, oldest first."""
    q = select(IncidentRow)
    if since_ns is not None:
        q = q.where(IncidentRow.opened_ns >= since_ns)
    if until_ns is not None:
        q = q.where(IncidentRow.opened_ns < until_ns)
    with Session(db) as s:
        incs = s.scalars(q.order_by(IncidentRow.opened_ns, IncidentRow.id)).all()
        root_ids = [r.root_alarm_id for r in incs if r.root_alarm_id]
        roots = {a.id: a for a in s.scalars(select(AlarmRow).where(AlarmRow.id.in_(root_ids)))} if root_ids else {}
        members: dict[str, list[AlarmRow]] = defaultdict(list)
        inc_ids = [r.id for r in incs]
        if inc_ids:
            for a in s.scalars(select(AlarmRow).where(AlarmRow.incident_id.in_(inc_ids))):
                members[a.incident_id].append(a)
        out = []
        for r in incs:
            mine = sorted(members.get(r.id, []), key=lambda m: (m.raised_ns, m.id))
            a = roots.get(r.root_alarm_id) or next((m for m in mine if m.component == r.root_component), None) \
                or (mine[0] if mine else None)  # an incident of one alarm names no root alarm
            comp = r.root_component or (a.component if a else "")
            labels = dict(a.labels or {}) if a else {}
            labels.update({k: v for k, v in (r.labels or {}).items() if k not in labels})
            kind, vendor = labels.get("kind", ""), labels.get("vendor", "")
            hall, row, dev = labels.get("hall", ""), labels.get("row", ""), labels.get("device", "")
            if inventory is not None and comp in inventory.components:
                c = inventory.components[comp]
                t = c.tags(inventory.site)
                kind, hall, row, dev = c.kind, t.get("hall", ""), t.get("row", ""), t.get("device", comp)
                vendor = str(c.attrs.get("vendor", vendor) or "")
            alarms = mine or ([a] if a else [])
            causes = tuple(sorted({m.probable_cause for m in alarms}))
            rules = tuple(sorted({x for m in alarms for x in (m.rule or "").split(",") if x}))
            kinds = tuple(sorted({_kind_of(inventory, m.component, (m.labels or {}).get("kind", "")) for m in alarms} - {""}))
            out.append(IncidentFacts(r.id, r.title, r.state, r.severity, a.probable_cause if a else "", comp, kind, hall,
                                     row, dev or comp, int(r.opened_ns), r.acknowledged_ns, r.resolved_ns, r.closed_ns,
                                     causes, kinds, rules, vendor, _problem_words(alarms, inventory)))
        return out


_WORD = re.compile(r"[a-z][a-z_]+|xid \d+")


def _problem_words(alarms, inventory: Inventory | None) -> tuple[str, ...]:
    """What the alarms say, without names and numbers: the words of their specific problems
    (component names and measured values dropped; XID codes kept, they name the failure)."""
    names = {m.component.lower() for m in alarms}
    words: set[str] = set()
    for m in alarms:
        text = (m.specific_problem or "").lower()
        for n in names:
            text = text.replace(n, " ")
        words.update(w for w in _WORD.findall(text) if len(w) > 2 and w not in _STOP)
    return tuple(sorted(words))


_STOP = frozenset({"the", "and", "for", "from", "its", "not", "was", "has", "with", "at", "on", "of"})


def _kind_of(inventory: Inventory | None, component: str, fallback: str) -> str:
    if inventory is not None and component in inventory.components:
        return inventory.components[component].kind
    return fallback


@dataclass(frozen=True)
class ResponseStats:
    group: str
    incidents: int
    acknowledged: int
    resolved: int
    mtta_s: float | None
    mttr_s: float | None
    max_tta_s: float | None
    max_ttr_s: float | None


def _mean(xs: list[float]) -> float | None:
    return float(np.mean(xs)) if xs else None


def response_times(facts: Sequence[IncidentFacts], by: str = "all") -> list[ResponseStats]:
    """MTTA / MTTR per group (`GROUPINGS`); groups sorted by severity rank or name."""
    try:
        key = GROUPINGS[by]
    except KeyError:
        raise ValueError(f"cannot group by {by!r}; one of {', '.join(GROUPINGS)}") from None
    groups: dict[str, list[IncidentFacts]] = defaultdict(list)
    for f in facts:
        groups[key(f)].append(f)
    out = []
    for g, fs in groups.items():
        tta = [f.tta_s for f in fs if f.tta_s is not None]
        ttr = [f.ttr_s for f in fs if f.ttr_s is not None]
        out.append(ResponseStats(g, len(fs), len(tta), len(ttr), _mean(tta), _mean(ttr), max(tta, default=None),
                                 max(ttr, default=None)))

    def order(s: ResponseStats):
        if by == "severity" and s.group in PerceivedSeverity._value2member_map_:
            return (-SEVERITY_RANK[PerceivedSeverity(s.group)], s.group)
        return (0, s.group)
    return sorted(out, key=order)


@dataclass(frozen=True)
class Recurring:
    what: str            # "device" or "cause"
    key: str
    count: int
    incident_ids: tuple[str, ...]
    first_ns: int
    last_ns: int


def recurring(facts: Sequence[IncidentFacts], min_count: int = 2) -> list[Recurring]:
    """Devices (root components) and causes with `min_count` or more incidents, most first."""
    out = []
    for what, key in (("device", lambda f: f.component), ("cause", lambda f: f.cause)):
        groups: dict[str, list[IncidentFacts]] = defaultdict(list)
        for f in facts:
            if key(f):
                groups[key(f)].append(f)
        for k, fs in groups.items():
            if len(fs) >= min_count:
                out.append(Recurring(what, k, len(fs), tuple(f.id for f in fs), min(f.opened_ns for f in fs),
                                     max(f.opened_ns for f in fs)))
    return sorted(out, key=lambda r: (r.what, -r.count, r.key))


# Which telemetry tells the story of an incident, by the root component's kind.
KIND_METRICS: Mapping[str, tuple[tuple[str, Scope], ...]] = {
    "cooling": (("cooling_running", Scope()), ("cooling_supply_temp_degc", Scope()),
                ("rack_inlet_temp_degc", Scope(kind="rack")), ("cooling_filter_dp_pa", Scope()),
                ("cooling_flow_lpm", Scope()), ("cooling_coolant_level_pct", Scope())),
    "zone": (("rack_inlet_temp_degc", Scope(kind="rack")),),
    "ups": (("ups_on_battery", Scope()), ("ups_battery_charge_pct", Scope()), ("ups_output_load_pct", Scope()),
            ("ups_output_voltage_v", Scope())),
    "pdu": (("pdu_breaker_closed", Scope()), ("pdu_load_pct", Scope()), ("pdu_voltage_v", Scope()),
            ("rack_power_w", Scope(kind="rack"))),
    "rack_pdu": (("rack_power_w", Scope(kind="rack")),),
    "rack": (("rack_inlet_temp_degc", Scope()), ("rack_power_w", Scope())),
    "row": (("rack_inlet_temp_degc", Scope(kind="rack")), ("rack_power_w", Scope(kind="rack"))),
    "server": (("server_up", Scope()), ("server_inlet_temp_degc", Scope()), ("server_power_w", Scope())),
    "accel": (("accel_up", Scope()), ("accel_temp_degc", Scope()), ("accel_mem_temp_degc", Scope()), ("accel_power_w", Scope()),
              ("accel_thermal_throttle", Scope()), ("accel_ecc_uncorrected_total", Scope())),
}


@dataclass(frozen=True)
class Series:
    metric: str
    unit: str
    label: str                  # what the series is (the component or the scope)
    time_ns: np.ndarray
    values: np.ndarray


def telemetry_around(store: Store, inventory: Inventory, facts: IncidentFacts, before_s: float = 1800,
                     after_s: float = 1800, every_s: float = 60, agg: str = "mean") -> list[Series]:
    """The `KIND_METRICS` of the root component's kind from `before_s` before the incident opened
    to `after_s` after (or to its resolution when later), in `every_s` windows: one series per
    metric, the scope's components aggregated (mean; max for temperatures)."""
    if facts.component not in inventory.components:
        return []
    kind = inventory.components[facts.component].kind
    start = facts.opened_ns - int(before_s * _NS)
    end = max(facts.opened_ns + int(after_s * _NS), facts.resolved_ns or 0)
    out = []
    for metric, scope in KIND_METRICS.get(kind, ()):
        m = METRICS[metric]
        try:
            comps = resolve_scope(inventory, scope, facts.component)
            where = scope_where(inventory, comps, m.measurement)
            a = "max" if m.unit == "degC" else agg
            b = store.query_range(m.measurement, [metric], start, end, every_s=every_s, agg=a, where=where, group_by=[])
        except (StoreError, ValueError, KeyError):
            continue
        if not len(b):
            continue
        label = comps[0] if len(comps) == 1 else f"{len(comps)} {inventory.components[comps[0]].kind}s of {facts.component}"
        out.append(Series(metric, m.unit, label, np.asarray(b.time_ns), np.asarray(b.fields[metric], dtype=float)))
    return out


def telemetry_signature(series: Sequence[Series], opened_ns: int) -> dict[str, float]:
    """Relative change of each series across the opening: (after - before) / (|before| + 1), clipped."""
    sig = {}
    for s in series:
        before, after = s.values[s.time_ns < opened_ns], s.values[s.time_ns >= opened_ns]
        if before.size and after.size and np.isfinite(before).any() and np.isfinite(after).any():
            b, a = float(np.nanmean(before)), float(np.nanmean(after))
            sig[s.metric] = float(np.clip((a - b) / (abs(b) + 1.0), -3, 3))
    return sig


@dataclass(frozen=True)
class Similar:
    incident_id: str
    distance: float
    shared: tuple[str, ...]      # what it has in common: same root cause, same causes, same device, ...


# Feature weights: what happened (the signature) first, where it happened last.
_WEIGHTS = {"cause": 2.5, "causes": 2.5, "kind": 2.0, "vendor": 1.0, "rules": 1.5, "words": 1.5, "affected": 1.5,
            "telemetry": 1.0, "severity": 0.5, "device": 0.6, "row": 0.3, "hall": 0.2}
_ONE_HOT = ("kind", "vendor", "cause", "device", "row", "hall")
_SETS: Mapping[str, Callable[[IncidentFacts], frozenset[str]]] = {
    "causes": lambda f: f.cause_set, "rules": lambda f: frozenset(f.rules), "affected": lambda f: f.kind_set,
    "words": lambda f: frozenset(f.words)}


def similar_incidents(target: IncidentFacts, history: Sequence[IncidentFacts],
                      signatures: Mapping[str, Mapping[str, float]] | None = None, k: int = 5) -> list[Similar]:
    """The `k` past incidents nearest to `target` (excluding itself), nearest first (ties: most
    recent first). Sets (causes, rules, affected kinds) enter as unit-length indicator vectors,
    so their distance grows with how much they differ, not with how large they are."""
    from sklearn.neighbors import NearestNeighbors

    pool = [f for f in history if f.id != target.id]
    if not pool:
        return []
    signatures = signatures or {}
    allf = [target, *pool]
    cats = {name: sorted({getattr(f, name) for f in allf}) for name in _ONE_HOT}
    vocab = {name: sorted(set().union(*(fn(f) for f in allf))) for name, fn in _SETS.items()}
    metrics = sorted({m for f in allf for m in signatures.get(f.id, {})})

    def vec(f: IncidentFacts) -> np.ndarray:
        parts = []
        for name, values in cats.items():
            onehot = np.zeros(len(values))
            onehot[values.index(getattr(f, name))] = _WEIGHTS[name] / np.sqrt(2)
            parts.append(onehot)
        for name, fn in _SETS.items():
            members = fn(f)
            ind = np.array([1.0 if v in members else 0.0 for v in vocab[name]])
            norm = np.linalg.norm(ind)
            parts.append(_WEIGHTS[name] / np.sqrt(2) * (ind / norm if norm else ind))
        sev = SEVERITY_RANK.get(PerceivedSeverity(f.severity), 0) if f.severity in PerceivedSeverity._value2member_map_ else 0
        parts.append(np.array([_WEIGHTS["severity"] * sev / 5.0]))
        sig = signatures.get(f.id, {})
        parts.append(np.array([_WEIGHTS["telemetry"] * sig.get(m, 0.0) for m in metrics]))
        return np.concatenate(parts)

    X = np.vstack([vec(f) for f in pool])
    nn = NearestNeighbors(n_neighbors=min(k, len(pool))).fit(X)
    dist, idx = nn.kneighbors(vec(target)[None, :])
    out = []
    for d, i in zip(dist[0], idx[0]):
        f = pool[int(i)]
        shared = tuple(n for n, same in (
            ("same cause", f.cause == target.cause), ("same causes", f.cause_set == target.cause_set),
            ("same rules", bool(f.rules) and set(f.rules) == set(target.rules)),
            ("same device", f.component == target.component), ("same kind", f.kind == target.kind),
            ("same affected kinds", f.kind_set == target.kind_set), ("same row", bool(f.row) and f.row == target.row))
            if same)
        out.append((round(float(d), 9), -f.opened_ns, Similar(f.id, float(d), shared)))
    return [x[2] for x in sorted(out, key=lambda x: x[:2])]  # equally near: the most recent first
