"""The alarm manager: signals in, alarms out (dedup, flapping damping, list lifecycle).

- Identity: one alarm per (component, probable cause). Several rules may feed one alarm (a
  GPU lost seen as an `accel_lost` event, an XID 79 and `accel_up == 0`): its severity is
  the highest of the rules currently active, and it clears when all of them have cleared.
- Lifecycle: active-unacknowledged -> (ack) active-acknowledged -> (clear)
  cleared-acknowledged, which leaves the list; cleared-unacknowledged stays listed until
  acknowledged. A raise while the cleared alarm is still listed re-activates it (count + 1)
  rather than adding a second row.
- Order is kept per source: a signal older than the last signal of the *same rule* for the
  same alarm is ignored, so replaying messages after a crash cannot re-raise a cleared alarm
  or clear a newer raise. A late signal from *another* rule, carrying its own (earlier)
  timestamp, is applied: an XID 48 event stamped at the fault that arrives after the next
  poll's ECC rate sample joins the alarm as a source (and keeps it active after the rate
  clears) instead of being dropped. An alarm's `raised_ns` is the earliest time any of its
  sources saw the condition in the current activation, so correlation sees when the fault
  began; `changed_ns` never moves backwards. While nothing has been heard about an alarm since
  a restart (state restored from the database, messages replayed from the last committed
  offset), a signal older than the alarm's last change is ignored when the alarm is cleared or
  the rule already feeds it, as before.
- Flapping: when an alarm is raised `max_raises` times within `window_s`, it is marked
  flapping and its clears are held for `hold_s`; a raise during the hold cancels the clear,
  so a flapping sensor produces one alarm and no notification storm.

Pure in-memory state; the service persists every `AlarmChange` in the same transaction as
the bus offsets it came from.
"""

from __future__ import annotations

import uuid
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterable, NamedTuple

from dcops.alerts.alarms.signals import AlarmSignal
from dcops.alarm_types import SEVERITY_RANK, Alarm, AlarmKey, PerceivedSeverity, TimelineKind
from dcops.topology import Inventory

__all__ = ["FlapPolicy", "AlarmChange", "AlarmManager", "topology_labels"]

_NS = 1_000_000_000


@dataclass(frozen=True)
class FlapPolicy:
    window_s: float = 600.0
    max_raises: int = 3
    hold_s: float = 300.0


class AlarmChange(NamedTuple):
    kind: TimelineKind  # ALARM_RAISED, ALARM_CHANGED or ALARM_CLEARED
    alarm: Alarm


def topology_labels(inv: Inventory | None, component: str) -> dict[str, str]:
    """Matcher labels from the inventory: site, hall, row, rack, device, accel, kind."""
    if inv is None or component not in inv.components:
        return {}
    c = inv.components[component]
    out = dict(c.tags(inv.site))
    out["kind"] = c.kind
    if c.kind == "accel":
        out["vendor"] = str(c.attrs.get("vendor", ""))
        out["model"] = str(c.attrs.get("model", ""))
    return {k: v for k, v in out.items() if v}


def _max_severity(sevs: Iterable[PerceivedSeverity]) -> PerceivedSeverity:
    return max(sevs, key=SEVERITY_RANK.__getitem__, default=PerceivedSeverity.INDETERMINATE)


def _headline(srcs: dict[str, AlarmSignal]) -> str:
    """Specific problem of the most severe active source (the first raised among equals)."""
    best = max(srcs.values(), key=lambda x: SEVERITY_RANK[x.severity])
    return best.specific_problem


class AlarmManager:
    def __init__(self, inventory: Inventory | None = None, flap: FlapPolicy = FlapPolicy(),
                 new_id: Callable[[], str] = lambda: uuid.uuid4().hex[:16]) -> None:
        self.inventory = inventory
        self.flap = flap
        self._new_id = new_id
        self.alarms: dict[str, Alarm] = {}          # listed alarms by id
        self._by_key: dict[AlarmKey, str] = {}      # key -> id of the listed alarm
        self._sources: dict[AlarmKey, dict[str, AlarmSignal]] = {}
        # when each rule last started raising each alarm: several rules may feed one alarm (a trap
        # and the polled state; an analytics drift and, later, its threshold), and its `rule`
        # field lists them without saying which came first
        self.rule_since: dict[tuple[AlarmKey, str], int] = {}
        self._rule_active: dict[str, set[str]] = {}
        self._raises: dict[AlarmKey, deque[int]] = {}
        self._held_clear: dict[AlarmKey, int] = {}
        self._rule_seen: dict[tuple[AlarmKey, str], int] = {}  # (alarm key, rule) -> last signal time
        self._keys_seen: set[AlarmKey] = set()                # keys with a per-rule record

    # ----- state ---------------------------------------------------------------------------
    def load(self, alarms: Iterable[Alarm]) -> None:
        """Restore listed alarms (from the database after a restart)."""
        for a in alarms:
            if not a.listed:
                continue
            self.alarms[a.id] = a
            self._by_key[a.key] = a.id
            if a.active:
                for rule in filter(None, a.rule.split(",")):
                    self._rule_active.setdefault(rule, set()).add(a.component)
                    self._sources.setdefault(a.key, {})[rule] = AlarmSignal(
                        a.changed_ns, a.component, rule, True, a.severity, a.event_type, a.probable_cause,
                        a.specific_problem, a.additional_text, a.proposed_repair_actions, a.labels)

    def active_of(self, rule: str) -> set[str]:
        return self._rule_active.get(rule, set())

    def active(self) -> list[Alarm]:
        return [a for a in self.alarms.values() if a.active]

    def listed_for(self, component: str, cause) -> Alarm | None:
        """The listed alarm of (component, probable cause), if any."""
        aid = self._by_key.get(AlarmKey(component, cause))
        return self.alarms.get(aid) if aid else None

    def get(self, alarm_id: str) -> Alarm:
        return self.alarms[alarm_id]

    def replace(self, alarm: Alarm) -> None:
        """Store an alarm updated elsewhere (correlation, incidents, suppression)."""
        if alarm.listed:
            self.alarms[alarm.id] = alarm
        else:
            self._forget(alarm)

    def _forget(self, alarm: Alarm) -> None:
        self.alarms.pop(alarm.id, None)
        if self._by_key.get(alarm.key) == alarm.id:
            del self._by_key[alarm.key]

    # ----- signals -------------------------------------------------------------------------
    def apply(self, signals: Iterable[AlarmSignal]) -> list[AlarmChange]:
        out: list[AlarmChange] = []
        for s in signals:
            if self._stale(s):
                continue  # older than this rule's last word on the alarm: a replay
            ch = self._raise(s) if s.active else self._clear_source(s)
            if ch is not None:
                out.append(ch)
        return out

    def _stale(self, s: AlarmSignal) -> bool:
        key = AlarmKey(s.component, s.probable_cause)
        seen = self._rule_seen.get((key, s.rule))
        if seen is not None:
            if s.time_ns < seen:
                return True
        elif key not in self._keys_seen:  # nothing heard about this alarm since (re)start
            aid = self._by_key.get(key)
            old = self.alarms.get(aid) if aid else None
            if old is not None and s.time_ns < old.changed_ns and (not old.active or s.rule in old.rule.split(",")):
                return True
        self._rule_seen[(key, s.rule)] = s.time_ns
        self._keys_seen.add(key)
        return False

    def _raise(self, s: AlarmSignal) -> AlarmChange | None:
        key = AlarmKey(s.component, s.probable_cause)
        srcs = self._sources.setdefault(key, {})
        first_source = not srcs
        if s.rule not in srcs:
            self.rule_since[(key, s.rule)] = s.time_ns
        srcs[s.rule] = s
        self._rule_active.setdefault(s.rule, set()).add(s.component)
        sev = _max_severity(x.severity for x in srcs.values())
        rules = ",".join(sorted(srcs))
        aid = self._by_key.get(key)
        old = self.alarms.get(aid) if aid else None
        if old is not None and old.active:
            self._held_clear.pop(key, None)
            raised = min(old.raised_ns, s.time_ns)
            if old.severity == sev and old.rule == rules and raised == old.raised_ns:
                return None
            new = old.evolve(severity=sev, rule=rules, changed_ns=max(old.changed_ns, s.time_ns), raised_ns=raised,
                             specific_problem=_headline(srcs))
            self.alarms[new.id] = new
            return AlarmChange(TimelineKind.ALARM_CHANGED, new)
        if not first_source and old is None:
            srcs.clear()
            srcs[s.rule] = s
        flapping = self._note_raise(key, s.time_ns)
        labels = topology_labels(self.inventory, s.component)
        labels.update(s.labels)
        labels.update(component=s.component, probable_cause=s.probable_cause.value, event_type=s.event_type.value)
        if old is not None:  # cleared but still listed (unacknowledged): re-activate it
            new = old.evolve(severity=sev, rule=rules, changed_ns=max(old.changed_ns, s.time_ns), cleared_ns=None, cleared_by=None,
                             raised_ns=min(old.raised_ns, s.time_ns),
                             specific_problem=s.specific_problem, count=old.count + 1, flapping=flapping or old.flapping,
                             labels=labels)
        else:
            path = self.inventory.path(s.component) if self.inventory and s.component in self.inventory.components else s.component
            new = Alarm(id=self._new_id(), component=s.component, managed_object=path, event_type=s.event_type,
                        probable_cause=s.probable_cause, severity=sev, specific_problem=s.specific_problem,
                        raised_ns=s.time_ns, changed_ns=s.time_ns, proposed_repair_actions=s.repair_actions,
                        additional_text=s.additional_text, rule=rules, labels=labels, flapping=flapping)
        self.alarms[new.id] = new
        self._by_key[key] = new.id
        return AlarmChange(TimelineKind.ALARM_RAISED, new)

    def _note_raise(self, key: AlarmKey, t: int) -> bool:
        q = self._raises.setdefault(key, deque())
        q.append(t)
        while q and t - q[0] > self.flap.window_s * _NS:
            q.popleft()
        return len(q) >= self.flap.max_raises

    def _clear_source(self, s: AlarmSignal) -> AlarmChange | None:
        key = AlarmKey(s.component, s.probable_cause)
        srcs = self._sources.get(key)
        if srcs is not None:
            srcs.pop(s.rule, None)
        comps = self._rule_active.get(s.rule)
        if comps is not None:
            comps.discard(s.component)
        aid = self._by_key.get(key)
        old = self.alarms.get(aid) if aid else None
        if old is None or not old.active:
            return None
        if srcs:
            sev = _max_severity(x.severity for x in srcs.values())
            new = old.evolve(severity=sev, rule=",".join(sorted(srcs)), changed_ns=max(old.changed_ns, s.time_ns))
            self.alarms[new.id] = new
            return AlarmChange(TimelineKind.ALARM_CHANGED, new) if new != old else None
        if old.flapping:
            self._held_clear.setdefault(key, s.time_ns)
            return None
        return self._do_clear(old, max(old.changed_ns, s.time_ns), "dcops")

    def _do_clear(self, old: Alarm, t: int, who: str) -> AlarmChange:
        self._sources.pop(old.key, None)
        self._held_clear.pop(old.key, None)
        new = old.evolve(cleared_ns=t, cleared_by=who, changed_ns=t)
        if new.listed:
            self.alarms[new.id] = new
        else:
            self._forget(new)
        return AlarmChange(TimelineKind.ALARM_CLEARED, new)

    def tick(self, now_ns: int) -> list[AlarmChange]:
        """Release held clears of flapping alarms that stayed clear for `hold_s`; forget raise
        history older than the flap window."""
        out = []
        window = self.flap.window_s * _NS
        if len(self._raises) > len(self._by_key) + 1000:
            for key in [k for k, q in self._raises.items() if k not in self._by_key and (not q or now_ns - q[-1] > window)]:
                del self._raises[key]
        if len(self._rule_seen) > 4 * len(self._by_key) + 4000:  # keep only the order of listed alarms' rules
            self._rule_seen = {k: t for k, t in self._rule_seen.items() if k[0] in self._by_key or now_ns - t < window}
            self._keys_seen = {k for k, _ in self._rule_seen}
        for key, t in list(self._held_clear.items()):
            if now_ns - t >= self.flap.hold_s * _NS:
                aid = self._by_key.get(key)
                del self._held_clear[key]
                if aid and aid in self.alarms and self.alarms[aid].active:
                    ch = self._do_clear(self.alarms[aid].evolve(flapping=False), now_ns, "dcops")
                    out.append(ch)
        return out

    # ----- operator actions ----------------------------------------------------------------
    def acknowledge(self, alarm_id: str, user: str, now_ns: int) -> AlarmChange:
        old = self.alarms.get(alarm_id)
        if old is None:
            raise KeyError(f"no listed alarm {alarm_id!r}")
        new = old.evolve(acknowledged_ns=now_ns, acknowledged_by=user)
        self.replace(new)
        return AlarmChange(TimelineKind.ALARM_CHANGED, new)

    def clear(self, alarm_id: str, user: str, now_ns: int) -> AlarmChange:
        """Manual clear by an operator (e.g. an event-raised alarm with no clearing event)."""
        old = self.alarms.get(alarm_id)
        if old is None or not old.active:
            raise KeyError(f"no active alarm {alarm_id!r}")
        for rule in filter(None, old.rule.split(",")):
            self._rule_active.get(rule, set()).discard(old.component)
        return self._do_clear(old, now_ns, user)
