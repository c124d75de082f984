"""Outage scenarios as alarm signals on a real site's topology, run through the AlertPipeline.

Signals carry what the shipped rule pack would say (rule name, severity, event type, probable
cause and labels come from `default_rules()`), stamped when the condition began. `run`
feeds them one simulated second at a time with a reconcile per second, as the alerter does,
and returns the incidents as content (root component, severity, member alarms), never ids.
`shuffle` reorders the signals within each second and `reverse_ids` hands out alarm ids in
reverse order, so a test can prove nothing depends on arrival order or ids.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from dcops.alarm_types import TimelineEntry
from dcops.alerts.alarms.signals import AlarmSignal
from dcops.alerts.config import alerting_from_text
from dcops.alerts.pipeline import AlertPipeline
from dcops.alerts.rules.engine import default_rules

NS = 1_000_000_000
T0 = 1_800_000_000 * NS
RULES = {r.name: r for r in default_rules()}
CFG = alerting_from_text("""
receivers:
  - {name: noc, type: webhook, url: "http://127.0.0.1:9/hook"}
route: {receiver: noc}
grouping: {group_wait_s: 30}
""")


def sig(t_s: float, comp: str, rule: str, active: bool = True, **labels) -> AlarmSignal:
    r = RULES[rule]
    return AlarmSignal(T0 + int(t_s * NS), comp, rule, active, r.severity, r.event_type, r.probable_cause,
                       f"{rule} on {comp}", labels={**r.labels, **labels})


@dataclass(frozen=True)
class Inc:
    root: str
    cause: str
    severity: str
    members: frozenset[str]   # "component|probableCause"

    def comps(self) -> set[str]:
        return {m.split("|")[0] for m in self.members}


@dataclass
class Result:
    incidents: list[Inc]
    pipeline: AlertPipeline
    timeline: list[tuple[str, TimelineEntry]]

    def digest(self) -> tuple:
        return tuple(sorted((i.root, i.cause, i.severity, tuple(sorted(i.members))) for i in self.incidents))

    def holding(self, comp: str) -> Inc:
        (inc,) = [i for i in self.incidents if comp in i.comps()]
        return inc


def run(inv, signals: list[AlarmSignal], until_s: float, *, shuffle: int | None = None,
        reverse_ids: bool = False) -> Result:
    counter = iter(range(10**6, 0, -1) if reverse_ids else range(10**6))
    p = AlertPipeline(inv, (), CFG, None, new_id=lambda: f"{next(counter):08d}")
    rng = random.Random(shuffle)
    signals = sorted(signals, key=lambda s: (s.time_ns, s.component, s.rule))
    timeline: list = []
    i = 0
    for sec in range(int(until_s) + 1):
        end = T0 + (sec + 1) * NS
        j = i
        while j < len(signals) and signals[j].time_ns < end:
            j += 1
        chunk = list(signals[i:j])
        if shuffle is not None:
            rng.shuffle(chunk)
        i = j
        p.feed_signals(chunk)
        timeline.extend(p.reconcile(end).timeline)
    alarms = p.manager.alarms
    incs = []
    for inc in p.incidents.values():
        members = [a for a in alarms.values() if a.incident_id == inc.id]
        if not members:
            continue
        root = alarms.get(inc.root_alarm_id or "")
        incs.append(Inc(inc.root_component or "", (root or members[0]).probable_cause.value, inc.severity.value,
                        frozenset(f"{a.component}|{a.probable_cause.value}" for a in members)))
    return Result(incs, p, timeline)


def servers_of(inv, rack: str) -> list[str]:
    return sorted(s.name for s in inv.servers if s.rack == rack)


def accels_of(inv, server: str) -> list[str]:
    return sorted(c for c in inv.children(server) if inv.components[c].kind == "accel")


def rack_dark(inv, rack: str, t_s: float, step_s: float = 0.5) -> list[AlarmSignal]:
    """What a rack losing all power looks like: every server down and every accelerator gone,
    seen over the next poll or two."""
    out = []
    for k, srv in enumerate(servers_of(inv, rack)):
        out.append(sig(t_s + 1 + k * step_s, srv, "server_down"))
        out += [sig(t_s + 2 + k * step_s, a, "accel_down") for a in accels_of(inv, srv)]
    return out


def finding(t_s: float, comp: str) -> AlarmSignal:
    return sig(t_s, comp, "accel_anomaly", detector="peer_group")
