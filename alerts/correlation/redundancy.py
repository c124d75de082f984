"""Redundancy-aware severity and Alertmanager-style inhibition.

- `assess_redundancy` knows N+1: one CRAC of a zone with `redundancy: 1`, or a PDU whose
  racks all have another live feed, is "redundancy lost" (major), not an outage (critical).
  Rules mark alarms that mean "this unit is out" with the label `unit_lost: "true"`.
- `inhibited` applies Alertmanager inhibition rules: while a source alarm is active, target
  alarms with equal values of the `equal` labels are not notified (they stay visible).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from dcops.alerts.alarms.matchers import matches_all
from dcops.alarm_types import Alarm, Matcher, PerceivedSeverity
from dcops.alerts.correlation.incidents import worst
from dcops.topology import Inventory

__all__ = ["InhibitRule", "assess_redundancy", "incident_severity", "inhibited", "is_lost"]


def is_lost(a: Alarm) -> bool:
    return a.labels.get("unit_lost") == "true"


def _lost(alarms_by_comp: Mapping[str, Sequence[Alarm]], comp: str) -> bool:
    return any(a.active and a.labels.get("unit_lost") == "true" for a in alarms_by_comp.get(comp, ()))


def _at_risk(alarms_by_comp: Mapping[str, Sequence[Alarm]], comp: str) -> bool:
    return any(a.active and a.labels.get("unit_at_risk") == "true" for a in alarms_by_comp.get(comp, ()))


def assess_redundancy(alarm: Alarm, alarms_by_comp: Mapping[str, Sequence[Alarm]], inv: Inventory) -> tuple[PerceivedSeverity, str] | None:
    """Severity and note for an alarm that takes a unit of a redundant group out, else None.

    An alarm that says a power unit is about to be out (`unit_at_risk`: a UPS battery nearly
    empty) is assessed as if it, and every other unit at risk, were already lost: critical
    when racks would be left without power, major when they would run on their other feed."""
    if alarm.component not in inv.components or not alarm.active:
        return None
    c = inv.components[alarm.component]
    if alarm.labels.get("unit_at_risk") == "true" and c.kind in ("pdu", "ups", "rack_pdu"):
        return _power(c, alarms_by_comp, inv, at_risk=True)
    if alarm.labels.get("unit_lost") != "true":
        return None
    if c.kind == "cooling":
        worst: tuple[PerceivedSeverity, str] | None = None
        for z in sorted(inv.children(c.name)):
            zc = inv.components[z]
            if zc.kind != "zone":
                continue
            units = tuple(zc.attrs["units"])
            red = int(zc.attrs.get("redundancy", 0))
            down = [u for u in units if _lost(alarms_by_comp, u)]
            if len(down) <= red:
                res = (PerceivedSeverity.MAJOR, f"redundancy lost in zone {z}: {len(down)} of {len(units)} units down, "
                                                f"N+{red} carries the load")
            else:
                res = (PerceivedSeverity.CRITICAL, f"cooling capacity lost in zone {z}: {len(down)} of {len(units)} units down "
                                                   f"(N+{red})")
            if worst is None or res[0] is PerceivedSeverity.CRITICAL:
                worst = res
        return worst
    if c.kind in ("pdu", "ups", "rack_pdu"):
        return _power(c, alarms_by_comp, inv)
    return None


def _power(c, alarms_by_comp: Mapping[str, Sequence[Alarm]], inv: Inventory, at_risk: bool = False) -> tuple[PerceivedSeverity, str]:
    """Racks below power unit `c` left without a live feed by the units lost (and, with
    `at_risk`, by those about to be lost too)."""
    def out(name: str) -> bool:
        return _lost(alarms_by_comp, name) or (at_risk and (name == c.name or _at_risk(alarms_by_comp, name)))

    lost_pdus = {p.name for p in inv.of_kind("pdu") if out(p.name) or out(p.attrs.get("ups", ""))}
    lost_rack_pdus = {p.name for p in inv.of_kind("rack_pdu") if out(p.name)}
    affected = sorted(r for r in inv.downstream(c.name) if inv.components[r].kind == "rack")
    dark = []
    for r in affected:
        feeds = inv.components[r].attrs["feeds"]
        rps = [x for x in inv.children(r) if inv.components[x].kind == "rack_pdu"]
        live = [f for f, p in feeds.items() if p not in lost_pdus
                and not any(inv.components[x].attrs.get("feed") == f and x in lost_rack_pdus for x in rps)]
        if not live:
            dark.append(r)
    if at_risk:
        if dark:
            return PerceivedSeverity.CRITICAL, f"racks that lose power when {c.name} is out: {', '.join(dark)}"
        return PerceivedSeverity.MAJOR, f"when {c.name} is out, {len(affected)} rack(s) run on their other feed"
    if dark:
        return PerceivedSeverity.CRITICAL, f"racks without power: {', '.join(dark)}"
    return PerceivedSeverity.MAJOR, f"redundancy lost: {len(affected)} rack(s) run on their other feed"


def incident_severity(root: Alarm | None, live: Sequence[Alarm], inv: Inventory) -> PerceivedSeverity:
    """Worst live member, except that a group whose root lost one unit of a redundant group is
    as severe as the redundancy assessment of its lost units says (one leg / one N+1 unit lost:
    major; both: critical), not as its symptoms' rules say."""
    if root is not None and root.active and is_lost(root) and root.component in inv.components \
            and inv.components[root.component].kind in ("ups", "pdu", "rack_pdu", "cooling"):
        return worst([m for m in live if is_lost(m)] + [root])
    return worst(live)


@dataclass(frozen=True)
class InhibitRule:
    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...] = ()


def inhibited(alarms: Sequence[Alarm], rules: Sequence[InhibitRule]) -> dict[str, str]:
    """target alarm id -> id of an active source alarm that inhibits it."""
    out: dict[str, str] = {}
    active = [a for a in alarms if a.active]
    for rule in rules:
        sources: dict[tuple, str] = {}
        for s in active:
            if matches_all(rule.source, s.labels):
                sources.setdefault(tuple(s.labels.get(k, "") for k in rule.equal), s.id)
        if not sources:
            continue
        for t in active:
            if t.id in out or not matches_all(rule.target, t.labels):
                continue
            src = sources.get(tuple(t.labels.get(k, "") for k in rule.equal))
            if src is not None and src != t.id:
                out[t.id] = src
    return out
