"""Grouping roots: when several siblings alarm for the same cause and nothing upstream does.

A rack whose both feeds die behind PDUs that say nothing (a dead bus, a cut cable, a PDU
agent that is itself down) shows as every server of the rack going down together. That is
one incident on the rack's power, not one per server. `propose_groups` finds such clusters
among alarms nothing explains and proposes a synthesised root on the common upstream
component (the server for its accelerators, the rack for its servers, the row for its racks,
the cooling zone for hot racks); the pipeline raises it as an alarm of rule
`correlation_group` (label `correlation_group: <rule>`), and the correlator then explains
the members, and later siblings of the same kind, by it. A later real root that explains
them better (a PDU trap that arrives late, stamped at the trip) takes them over, and the
synthesised root, explaining nothing any more, clears.

Pure functions over alarms and the inventory; deterministic (sorted by time, then name).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Mapping, Sequence

from dcops.alerts.alarms.signals import AlarmSignal
from dcops.alarm_types import SEVERITY_RANK, Alarm, EventType as ET, PerceivedSeverity as S, ProbableCause as PC
from dcops.alerts.correlation.explains import HOST_LOSS, LOAD_EFFECTS
from dcops.topology import Inventory

__all__ = ["GroupRule", "GROUPS", "GroupProposal", "propose_groups", "grouping_signals", "GROUP_LABEL", "GROUP_RULE_NAME"]

GROUP_LABEL = "correlation_group"
GROUP_RULE_NAME = "correlation_group"
_NS = 1_000_000_000


@dataclass(frozen=True)
class GroupRule:
    name: str
    member_kinds: frozenset[str]
    member_causes: frozenset[PC]
    parent_kind: str
    root_cause: PC
    event_type: ET
    explains: frozenset[PC]            # causes the synthesised root explains anywhere below it
    text: str                          # {parent} {n} {total} {what}
    critical_if: frozenset[PC] = frozenset()  # members with one of these make the root critical (else: worst member)
    min_members: int = 2
    min_hosts: int = 1  # members must span this many servers (a rack's network, not one host's agent)


_POWER_EFFECTS = HOST_LOSS | LOAD_EFFECTS | {PC.POWER_PROBLEM, PC.POWER_SUPPLY_FAILURE, PC.LOSS_OF_REDUNDANCY}

GROUPS: tuple[GroupRule, ...] = (
    GroupRule("server-accelerators", frozenset({"accel"}), frozenset({PC.EQUIPMENT_MALFUNCTION, PC.LOSS_OF_SIGNAL}),
              "server", PC.EQUIPMENT_MALFUNCTION, ET.EQUIPMENT, HOST_LOSS | LOAD_EFFECTS,
              "{n} of {total} accelerators of {parent} lost together"),
    GroupRule("rack-power", frozenset({"server"}), frozenset({PC.UNDERLYING_RESOURCE_UNAVAILABLE, PC.POWER_SUPPLY_FAILURE}),
              "rack", PC.POWER_PROBLEM, ET.EQUIPMENT, _POWER_EFFECTS,
              "power lost to rack {parent}? {n} of {total} servers {what} together, nothing upstream alarms",
              critical_if=frozenset({PC.UNDERLYING_RESOURCE_UNAVAILABLE})),
    GroupRule("rack-network", frozenset({"server", "accel"}), frozenset({PC.LOSS_OF_SIGNAL, PC.COMMUNICATIONS_FAILURE}),
              "rack", PC.COMMUNICATIONS_FAILURE, ET.COMMUNICATIONS,
              frozenset({PC.LOSS_OF_SIGNAL, PC.COMMUNICATIONS_FAILURE}) | LOAD_EFFECTS,
              "no data from {n} devices of rack {parent} together (top-of-rack network?)", min_hosts=2),
    GroupRule("rack-anomalies", frozenset({"server", "accel"}), frozenset({PC.PERFORMANCE_DEGRADED}),
              "rack", PC.PERFORMANCE_DEGRADED, ET.QUALITY_OF_SERVICE, LOAD_EFFECTS | {PC.TEMPERATURE_UNACCEPTABLE},
              "analytics findings on {n} devices of rack {parent} together"),
    GroupRule("row-power", frozenset({"rack"}), frozenset({PC.POWER_PROBLEM}),
              "row", PC.POWER_PROBLEM, ET.EQUIPMENT, _POWER_EFFECTS,
              "power lost to {n} of {total} racks of row {parent} together, nothing upstream alarms"),
    GroupRule("zone-heat", frozenset({"rack", "row"}), frozenset({PC.TEMPERATURE_UNACCEPTABLE}),
              "zone", PC.HEATING_VENT_COOLING, ET.ENVIRONMENTAL,
              frozenset({PC.TEMPERATURE_UNACCEPTABLE, PC.HEATING_VENT_COOLING}) | LOAD_EFFECTS,
              "{n} racks of cooling zone {parent} hot together, no cooling unit alarms"),
)
GROUPS_BY_NAME = {g.name: g for g in GROUPS}

_WHAT = {PC.UNDERLYING_RESOURCE_UNAVAILABLE: "down", PC.POWER_SUPPLY_FAILURE: "lost a PSU feed"}


@dataclass(frozen=True)
class GroupProposal:
    rule: GroupRule
    parent: str
    members: tuple[str, ...]   # alarm ids, in (start, component) order
    raised_ns: int
    severity: S
    text: str


def _host(inv: Inventory, comp: str) -> str:
    """The server a component runs on (itself for a server)."""
    if inv.components[comp].kind == "server":
        return comp
    return inv.nearest_upstream(comp, "server") or comp


def _children_of_kind(inv: Inventory, parent: str, kinds: frozenset[str]) -> int:
    return sum(1 for c in inv.downstream(parent) if inv.components[c].kind in kinds)


def propose_groups(alarms: Sequence[Alarm], explained: Mapping[str, object], inv: Inventory,
                   window_s: float = 60.0) -> list[GroupProposal]:
    """Clusters of at least `min_members` unexplained active alarms of one rule's kinds and
    causes under one parent, started within `window_s` of the cluster's first."""
    comps = inv.components
    out: list[GroupProposal] = []
    window = int(window_s * _NS)
    existing = {(a.component, a.labels.get(GROUP_LABEL)) for a in alarms if a.active and a.labels.get(GROUP_LABEL)}
    for rule in GROUPS:
        by_parent: dict[str, list[Alarm]] = defaultdict(list)
        for a in alarms:
            if (not a.active or a.id in explained or a.probable_cause not in rule.member_causes
                    or a.component not in comps or comps[a.component].kind not in rule.member_kinds):
                continue
            if a.labels.get(GROUP_LABEL) == rule.name:
                continue
            parent = inv.nearest_upstream(a.component, rule.parent_kind)
            if parent is not None and (parent, rule.name) not in existing:
                by_parent[parent].append(a)
        for parent in sorted(by_parent):
            members = sorted(by_parent[parent], key=lambda a: (a.raised_ns, a.component, a.probable_cause.value))
            first = members[0].raised_ns
            cluster = [m for m in members if m.raised_ns - first <= window]
            distinct = sorted({m.component for m in cluster})
            if len(distinct) < rule.min_members:
                continue
            if rule.min_hosts > 1 and len({_host(inv, m.component) for m in cluster}) < rule.min_hosts:
                continue  # one server's accelerators: its agent or the server, not the rack's network
            total = _children_of_kind(inv, parent, rule.member_kinds)
            causes = {m.probable_cause for m in cluster}
            what = " and ".join(_WHAT.get(c, c.value) for c in sorted(causes, key=lambda c: c.value))
            if causes & rule.critical_if:
                sev = S.CRITICAL
            else:
                sev = max((m.severity for m in cluster), key=SEVERITY_RANK.__getitem__)
            text = rule.text.format(parent=parent, n=len(distinct), total=total, what=what)
            out.append(GroupProposal(rule, parent, tuple(m.id for m in cluster), first, sev, text))
    return out


def grouping_signals(manager, links: Mapping[str, object], inv: Inventory, window_s: float, now_ns: int) -> list[AlarmSignal]:
    """Signals for the alarm manager: raise each proposed grouping root (rule `correlation_group`),
    clear each active one that is nobody's parent any more. `links` maps alarm id -> an object
    with a `parent` attribute (the correlator's `Link`)."""
    alarms = manager.alarms
    out: list[AlarmSignal] = []
    for g in propose_groups(list(alarms.values()), links, inv, window_s):
        old = manager.listed_for(g.parent, g.rule.root_cause)
        t = max(g.raised_ns, old.changed_ns) if old is not None and not old.active else g.raised_ns
        out.append(AlarmSignal(
            t, g.parent, GROUP_RULE_NAME, True, g.severity, g.rule.event_type, g.rule.root_cause, g.text,
            additional_text=f"synthesised by correlation ({g.rule.name}): {len(g.members)} sibling alarms started "
                            f"together and nothing upstream alarms",
            labels={GROUP_LABEL: g.rule.name, "synthetic": "true"}))
    parents = {link.parent for aid, link in links.items() if alarms[aid].active}
    for a in alarms.values():
        if a.active and a.labels.get(GROUP_LABEL) and GROUP_RULE_NAME in a.rule.split(",") and a.id not in parents:
            out.append(AlarmSignal(max(now_ns, a.changed_ns), a.component, GROUP_RULE_NAME, False, a.severity,
                                   a.event_type, a.probable_cause, a.specific_problem))
    return out
