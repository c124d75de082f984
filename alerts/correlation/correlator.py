"""Topology correlation: which alarm explains which, redundancy-aware severity, inhibition.

Pure functions over alarms and the inventory; the service applies their answers.

- `EXPLAINS` is the table of what an upstream failure explains downstream: a power failure
  (UPS, floor PDU, rack PDU) explains servers down, accelerators lost, PSU faults; a cooling
  failure (CRAC/CDU, zone) explains temperatures, thermal throttling and lost accelerators; a
  server down explains its accelerators. `correlate` walks `Inventory.upstream` of every
  alarm's component and gives each explained alarm a parent; following parents gives the
  root cause. A symptom must not pre-date its root by more than `lookback_s`. A second unit
  lost in the same redundant group (another CRAC of the zone, the other feed of the same
  racks) joins the first one's group.
- `assess_redundancy` knows N+1: one CRAC of a zone with `redundancy: 1`, or a PDU whose
  racks all have another live feed, is "redundancy lost" (major), not an outage (critical).
  Rules mark alarms that mean "this unit is out" with the label `unit_lost: "true"`.
- `inhibited` applies Alertmanager inhibition rules: while a source alarm is active, target
  alarms with equal values of the `equal` labels are not notified (they stay visible).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from dcops.alerts.alarms.matchers import matches_all
from dcops.alarm_types import Alarm, Matcher, PerceivedSeverity, ProbableCause as PC
from dcops.topology import Inventory

__all__ = ["Explains", "EXPLAINS", "InhibitRule", "Correlator", "assess_redundancy", "inhibited"]

_NS = 1_000_000_000


@dataclass(frozen=True)
class Explains:
    """An alarm with a cause in `root_causes` on a component of a kind in `root_kinds`
    explains alarms with a cause in `symptom_causes` on its component or downstream of it."""

    name: str
    root_kinds: frozenset[str]
    root_causes: frozenset[PC]
    symptom_causes: frozenset[PC]
    only_unpowered: frozenset[PC] = frozenset()  # explained only in racks left with no live feed


_POWER = frozenset({PC.COMMERCIAL_POWER_FAILURE, PC.BATTERY_DISCHARGING, PC.BATTERY_FAILURE, PC.POWER_PROBLEM,
                    PC.POWER_SUPPLY_FAILURE})
_COOLING = frozenset({PC.HEATING_VENT_COOLING, PC.FAN_FAILURE, PC.PRESSURE_UNACCEPTABLE, PC.LEAK_DETECTED})
_HOST_EFFECTS = frozenset({PC.EQUIPMENT_MALFUNCTION, PC.UNDERLYING_RESOURCE_UNAVAILABLE, PC.LOSS_OF_SIGNAL,
                           PC.COMMUNICATIONS_FAILURE, PC.PERFORMANCE_DEGRADED})

# what a surviving unit of a redundant group shows when it carries a lost sibling's load
_SIBLING_EFFECTS = _POWER | _COOLING | {PC.RESOURCE_AT_OR_NEARING_CAPACITY, PC.TEMPERATURE_UNACCEPTABLE}

EXPLAINS: tuple[Explains, ...] = (
    Explains("power", frozenset({"ups", "pdu", "rack_pdu"}), _POWER,
             _HOST_EFFECTS | {PC.POWER_PROBLEM, PC.POWER_SUPPLY_FAILURE, PC.BATTERY_DISCHARGING, PC.LOSS_OF_REDUNDANCY,
                              PC.RESOURCE_AT_OR_NEARING_CAPACITY},
             only_unpowered=_HOST_EFFECTS),
    Explains("cooling", frozenset({"cooling", "zone"}), _COOLING | {PC.TEMPERATURE_UNACCEPTABLE},
             _HOST_EFFECTS | {PC.TEMPERATURE_UNACCEPTABLE, PC.HUMIDITY_UNACCEPTABLE, PC.THRESHOLD_CROSSED,
                              PC.HEATING_VENT_COOLING}),
    Explains("rack-heat", frozenset({"rack", "row"}), frozenset({PC.TEMPERATURE_UNACCEPTABLE}),
             frozenset({PC.TEMPERATURE_UNACCEPTABLE, PC.PERFORMANCE_DEGRADED, PC.EQUIPMENT_MALFUNCTION})),
    Explains("host", frozenset({"server"}), frozenset({PC.UNDERLYING_RESOURCE_UNAVAILABLE}), _HOST_EFFECTS),
)


def _explains(root: Alarm, root_kind: str, symptom: Alarm, table: Sequence[Explains], unpowered: bool) -> bool:
    for e in table:
        if root_kind in e.root_kinds and root.probable_cause in e.root_causes and symptom.probable_cause in e.symptom_causes:
            if symptom.probable_cause in e.only_unpowered and not unpowered:
                continue
            return True
    return False


class Correlator:
    """Finds parents (and so root causes) for alarms. Keeps an upstream cache per component."""

    def __init__(self, inventory: Inventory, lookback_s: float = 900.0, table: Sequence[Explains] = EXPLAINS) -> None:
        self.inv = inventory
        self.lookback_ns = int(lookback_s * _NS)
        self.table = tuple(table)
        self._up: dict[str, tuple[str, ...]] = {}
        self._sib: dict[str, tuple[str, ...]] = {}
        self._root_kinds = frozenset(k for e in self.table for k in e.root_kinds)
        self._root_causes = frozenset(c for e in self.table for c in e.root_causes)

    def _upstream(self, comp: str) -> tuple[str, ...]:
        up = self._up.get(comp)
        if up is None:
            comps = self.inv.components
            up = (comp,) + tuple(c for c in self.inv.upstream(comp) if comps[c].kind in self._root_kinds) if comp in comps else ()
            self._up[comp] = up
        return up

    def parents(self, alarms: Iterable[Alarm]) -> dict[str, str]:
        """alarm id -> id of the alarm that explains it (its parent), for every explained alarm."""
        alarms = list(alarms)
        comps = self.inv.components
        roots_at: dict[str, list[Alarm]] = defaultdict(list)
        for a in alarms:
            if a.probable_cause in self._root_causes and a.component in comps and comps[a.component].kind in self._root_kinds:
                roots_at[a.component].append(a)
        if not roots_at:
            return {}
        unpowered = self._unpowered_racks(roots_at)
        out: dict[str, str] = {}
        for a in alarms:
            rack = comps[a.component].rack if a.component in comps else ""
            dark = rack in unpowered
            best: Alarm | None = None
            for comp in self._upstream(a.component):
                for r in roots_at.get(comp, ()):
                    if r.id == a.id or r.raised_ns - self.lookback_ns > a.raised_ns:
                        continue
                    if not _explains(r, comps[comp].kind, a, self.table, dark):
                        continue
                    if best is None or (r.raised_ns, r.id) < (best.raised_ns, best.id):
                        best = r
            if best is None and (a.labels.get("unit_lost") == "true" or a.probable_cause in _SIBLING_EFFECTS):
                # a second unit of the same redundant group (CRAC of one zone, the other feed of
                # the same racks) lost, or overloaded by taking over, belongs with the first unit
                # lost: one incident, its root the first
                for sib in self._siblings(a.component):
                    for r in roots_at.get(sib, ()):
                        if r.labels.get("unit_lost") == "true" and (r.raised_ns, r.id) < (a.raised_ns, a.id) \
                                and (best is None or (r.raised_ns, r.id) < (best.raised_ns, best.id)):
                            best = r
            if best is not None:
                out[a.id] = best.id
        return out

    def _siblings(self, comp: str) -> tuple[str, ...]:
        """Units that back each other up: CRACs of one zone, PDUs feeding the same racks."""
        sib = self._sib.get(comp)
        if sib is None:
            inv = self.inv
            c = inv.components.get(comp)
            out: set[str] = set()
            if c is not None and c.kind == "cooling":
                for z in inv.children(comp):
                    if inv.components[z].kind == "zone":
                        out.update(inv.components[z].attrs["units"])
            elif c is not None and c.kind == "pdu":
                for r in inv.racks_of_pdu.get(comp, ()):
                    out.update(inv.components[r].attrs["feeds"].values())
            elif c is not None and c.kind == "rack_pdu":
                out.update(x for x in inv.children(c.rack) if inv.components[x].kind == "rack_pdu")
            out.discard(comp)
            sib = self._sib[comp] = tuple(sorted(out))
        return sib

    def _unpowered_racks(self, roots_at: Mapping[str, Sequence[Alarm]]) -> set[str]:
        """Racks none of whose feeds is clear of an active power alarm (on its PDU, the PDU's UPS,
        or its rack PDU): only there can a power problem explain a server or accelerator failure.
        With a live feed left, the rack lost redundancy, not power."""
        inv = self.inv
        power = {c for c, alarms in roots_at.items() if inv.components[c].kind in ("ups", "pdu", "rack_pdu")
                 and any(a.active and a.probable_cause in _POWER for a in alarms)}
        if not power:
            return set()
        out = set()
        for r in inv.racks:
            feeds = r.attrs["feeds"]
            rps = {inv.components[x].attrs.get("feed"): x for x in inv.children(r.name) if inv.components[x].kind == "rack_pdu"}
            live = [f for f, p in feeds.items()
                    if p not in power and inv.components[p].attrs.get("ups") not in power and rps.get(f) not in power]
            if not live:
                out.add(r.name)
        return out

    @staticmethod
    def roots(parents: Mapping[str, str]) -> dict[str, str]:
        """Follow parents to the top: alarm id -> root alarm id (cycles are cut)."""
        out: dict[str, str] = {}
        for a in parents:
            seen = {a}
            cur = a
            while cur in parents and parents[cur] not in seen:
                cur = parents[cur]
                seen.add(cur)
            if cur != a:
                out[a] = cur
        return out


def _lost(alarms_by_comp: Mapping[str, Sequence[Alarm]], comp: str) -> bool:
    return any(a.active and a.labels.get("unit_lost") == "true" for a in alarms_by_comp.get(comp, ()))


def assess_redundancy(alarm: Alarm, alarms_by_comp: Mapping[str, Sequence[Alarm]], inv: Inventory) -> tuple[PerceivedSeverity, str] | None:
    """Severity and note for an alarm that takes a unit of a redundant group out, else None."""
    if alarm.labels.get("unit_lost") != "true" or alarm.component not in inv.components or not alarm.active:
        return None
    c = inv.components[alarm.component]
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
        lost_pdus = {p.name for p in inv.of_kind("pdu")
                     if _lost(alarms_by_comp, p.name) or _lost(alarms_by_comp, p.attrs.get("ups", ""))}
        lost_rack_pdus = {p.name for p in inv.of_kind("rack_pdu") if _lost(alarms_by_comp, p.name)}
        affected = sorted(r for r in inv.downstream(c.name) if inv.components[r].kind == "rack")
        dark = []
        for r in affected:
            feeds = inv.components[r].attrs["feeds"]
            rps = [x for x in inv.children(r) if inv.components[x].kind == "rack_pdu"]
            live = [f for f, p in feeds.items() if p not in lost_pdus
                    and not any(inv.components[x].attrs.get("feed") == f and x in lost_rack_pdus for x in rps)]
            if not live:
                dark.append(r)
        if dark:
            return PerceivedSeverity.CRITICAL, f"racks without power: {', '.join(dark)}"
        return PerceivedSeverity.MAJOR, f"redundancy lost: {len(affected)} rack(s) run on their other feed"
    return None


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
