"""Check steps: a telemetry condition dcops evaluates itself through the Store protocol.

`resolve_scope` turns a runbook `Scope` into inventory components; `scope_where` turns those
into a Store `where` filter; `evaluate_check` reads the window and decides. A check over a
duration passes only when every sample of every series in scope satisfies the comparison AND
the samples cover the window (no data is not "all good"); the result carries the worst value
so the operator sees why.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
import numpy as np

from dcops.alerts.runbooks.models import KIND_TAG, CheckSpec, Scope
from dcops.catalogue import MEASUREMENTS
from dcops.store.base import Store, StoreError
from dcops.topology import Inventory

__all__ = ["CheckResult", "resolve_scope", "scope_where", "evaluate_check", "context_variables"]

_NS = 1_000_000_000
_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq, "!=": operator.ne}
# For "worst value" reporting: the direction that is bad for each comparison.
_WORST = {"<": np.nanmax, "<=": np.nanmax, ">": np.nanmin, ">=": np.nanmin, "==": np.nanmax, "!=": np.nanmax}


@dataclass(frozen=True)
class CheckResult:
    passed: bool
    summary: str
    worst: float | None
    samples: int
    components: tuple[str, ...]


def resolve_scope(inv: Inventory, scope: Scope, root: str) -> tuple[str, ...]:
    """Components a scope names, relative to the incident's root component."""
    ref = root if scope.of == "root" else scope.of
    comp = inv.resolve(ref)
    if scope.kind is None or comp.kind == scope.kind:
        return (comp.name,)
    down = sorted(n for n in inv.downstream(comp.name) if inv.components[n].kind == scope.kind)
    if down:
        return tuple(down)
    up = sorted(n for n in inv.upstream(comp.name) if inv.components[n].kind == scope.kind)
    if up:
        return tuple(up)
    raise ValueError(f"scope {scope.kind!r} of {comp.name!r}: no {scope.kind} component up- or downstream of it")


def scope_where(inv: Inventory, components: tuple[str, ...], measurement: str) -> dict[str, list[str]]:
    """A Store `where` that selects the samples of `measurement` belonging to `components`."""
    tags = MEASUREMENTS[measurement].tags
    where: dict[str, set[str]] = {}
    for name in components:
        c = inv.components[name]
        tag = KIND_TAG[c.kind]
        ctags = c.tags(inv.site)
        if c.kind == "zone":
            where.setdefault("row", set()).update(inv.rows_of_zone.get(name, ()))
            continue
        if tag not in tags:
            raise ValueError(f"{name} ({c.kind}) has no {tag!r} tag in measurement {measurement!r}")
        if c.kind == "accel":
            where.setdefault("device", set()).add(ctags["device"])
        where.setdefault(tag, set()).add(ctags[tag])
    return {k: sorted(v) for k, v in where.items()}


def context_variables(inv: Inventory | None, root: str) -> dict[str, str]:
    """Template variables for a root component: component, device, server, accel, rack, row, zone, ..."""
    out = {"component": root}
    if inv is None or root not in inv.components:
        return out
    c = inv.components[root]
    t = c.tags(inv.site)
    out.update(site=inv.site, hall=t.get("hall", ""), row=t.get("row", ""), rack=t.get("rack", ""),
               device=t.get("device", ""), zone=str(c.attrs.get("zone", "")))
    if c.kind in ("server", "accel"):
        out["server"] = t["device"]
    if c.kind == "accel":
        out["accel"], out["accel_index"] = c.name, t["accel"]
    if c.kind == "accel" or c.kind == "server":
        out["zone"] = str(inv.components[t["rack"]].attrs.get("zone", "")) if t.get("rack") in inv.components else ""
    if c.kind == "zone":
        out["zone"] = c.name
    if c.kind == "cooling":
        out["zone"] = next((z for z, comp in inv.components.items()
                            if comp.kind == "zone" and c.name in comp.attrs.get("units", ())), "")
    return {k: v for k, v in out.items() if v}


def evaluate_check(store: Store, inv: Inventory, spec: CheckSpec, root: str, now_ns: int) -> CheckResult:
    comps = resolve_scope(inv, spec.scope, root)
    meas = spec.measurement
    where = scope_where(inv, comps, meas)
    cond = f"{spec.metric} {spec.comparison} {spec.threshold:g}"
    try:
        start = now_ns - int((spec.duration_s or spec.max_age_s) * _NS)
        b = store.query_range(meas, [spec.metric], start, now_ns + 1, where=where)
    except StoreError as exc:
        return CheckResult(False, f"{cond}: store error: {exc}", None, 0, comps)
    if spec.duration_s <= 0 and len(b):
        b = _newest_per_series(b)
    vals = np.asarray(b.fields.get(spec.metric, np.empty(0)), dtype=np.float64) if len(b) else np.empty(0)
    ok_mask = ~np.isnan(vals)
    vals, times = vals[ok_mask], np.asarray(b.time_ns)[ok_mask] if len(b) else np.empty(0, dtype=np.int64)
    scope_txt = f"{', '.join(comps[:6])}{' ...' if len(comps) > 6 else ''}"
    if vals.size == 0:
        return CheckResult(False, f"{cond} on {scope_txt}: no data in the window", None, 0, comps)
    worst = float(_WORST[spec.comparison](vals))
    held = bool(np.all(_OPS[spec.comparison](vals, spec.threshold)))
    if spec.duration_s > 0:
        covered_s = (int(times.max()) - start) / _NS
        first_s = (int(times.min()) - start) / _NS
        # The window must be covered: first sample near its start, last one near now.
        gap_s = max(first_s, (now_ns - int(times.max())) / _NS)
        if gap_s > max(0.2 * spec.duration_s, 30.0):
            return CheckResult(False, f"{cond} on {scope_txt}: data covers only part of the last "
                                      f"{spec.duration_s:.0f} s (gap {gap_s:.0f} s, covered {covered_s:.0f} s)",
                               worst, int(vals.size), comps)
    span = f" for {spec.duration_s:.0f} s" if spec.duration_s else " now"
    verdict = "holds" if held else "does not hold"
    return CheckResult(held, f"{cond}{span} on {scope_txt}: {verdict} (worst {worst:.2f}, {vals.size} samples)",
                       worst, int(vals.size), comps)


def _newest_per_series(b):
    """Keep each series' newest row (rows come sorted by time)."""
    keys = list(zip(*(b.tags[t] for t in sorted(b.tags)))) if b.tags else [()] * len(b)
    last: dict = {}
    for i, k in enumerate(keys):
        last[k] = i
    idx = np.array(sorted(last.values()), dtype=np.int64)
    return b.select(idx)


def describe_check(spec: CheckSpec) -> str:
    scope = spec.scope.of if spec.scope.kind is None else f"{spec.scope.kind} of {spec.scope.of}"
    dur = f" for {spec.duration_s:.0f} s" if spec.duration_s else ""
    return f"{spec.metric} {spec.comparison} {spec.threshold:g}{dur} ({scope})"

