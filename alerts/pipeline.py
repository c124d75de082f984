"""The alerting pipeline without threads or I/O of its own: signals -> alarms -> correlated
groups -> incidents -> planned notifications, as one `CycleWrite` per `reconcile()`.

Order of a cycle (`reconcile(now)`):
1. apply operator actions recorded since the last cycle (acknowledgements, incident states,
   silences), and release held clears of flapping alarms;
2. correlate: give each alarm its best root cause afresh (a better, earlier causal root that
   appears later takes its symptoms over; an alarm nothing explains any more keeps the root
   it had only once it has cleared), synthesise a grouping root where several siblings alarm
   together with nothing upstream (`correlation/grouping.py`), mark roots with the alarms they
   explain, set redundancy-aware severity, and mark suppression (silences, maintenance
   windows: expected; inhibition). Why each alarm was attached (`Link.why`) goes on the
   incident's timeline (entry data `why`, `correlation`);
3. group: one incident per root cause (or standalone alarm) once the group is `group_wait_s`
   old and at least `incident_min_severity`; a root that arrives after its symptoms joins
   their incident; every alarm change of a member goes on the incident's timeline;
4. notify: route new incidents to receivers (trigger), resolved ones (resolve), operator
   acknowledgements (acknowledge); suppressed incidents get `suppressed` outbox rows instead,
   and are notified when the suppression ends while they are still open.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Callable, Iterable, Mapping

from dcops.alerts.config import AlertingConfig
from dcops.alerts.correlation.correlator import Correlator, InhibitRule, Link, assess_redundancy, inhibited
from dcops.alerts.correlation.redundancy import incident_severity
from dcops.alerts.correlation.grouping import grouping_signals
from dcops.alerts.correlation.incidents import entry, incident_labels, incident_title, worst
from dcops.alerts.alarms.manager import AlarmChange, AlarmManager, FlapPolicy
from dcops.alerts.alarms.matchers import parse_matchers
from dcops.alerts.notification.plan import NotificationPlanner
from dcops.alerts.storage.alerter_store import AlerterStore, CycleWrite
from dcops.alerts.rules.engine import RuleEngine, configured_references
from dcops.alerts.alarms.signals import AlarmSignal
from dcops.alerts.alarms.silences import SuppressionIndex
from dcops.alarm_types import (SEVERITY_RANK, Alarm, Incident, IncidentAction, IncidentState, PerceivedSeverity,
                               TimelineKind as TK)
from dcops.topology import Inventory

__all__ = ["AlertPipeline"]

_NS = 1_000_000_000
_ACK_STATES = (IncidentState.ACKNOWLEDGED, IncidentState.MITIGATING)


class AlertPipeline:
    def __init__(self, inventory: Inventory, rules, cfg: AlertingConfig, store: AlerterStore | None,
                 new_id: Callable[[], str] | None = None,
                 on_trigger: Callable[[Incident, list[str]], None] | None = None,
                 on_stop_escalation: Callable[[str], None] | None = None,
                 owns: Callable[[str], bool] | None = None) -> None:
        """`owns`: which components' signals this pipeline turns into alarms (one alerter worker's
        power domains, `dcops.domains.DomainShare.owns`); every component's when None."""
        import uuid
        self.inv = inventory
        self.cfg = cfg
        self.store = store
        self._new_id = new_id or (lambda: uuid.uuid4().hex[:16])
        fl = cfg.flapping
        self.manager = AlarmManager(inventory, FlapPolicy(fl.window_s, fl.max_raises, fl.hold_s), self._new_id)
        self.engine = RuleEngine(rules, self.manager.active_of, configured_references(inventory))
        self.correlator = Correlator(inventory, cfg.grouping.lookback_s, clock_skew_s=cfg.grouping.clock_skew_s,
                                     settle_s={"cooling": cfg.grouping.settle_cooling_s,
                                               "power": cfg.grouping.settle_power_s})
        self.links: dict[str, Link] = {}             # alarm id -> why it is attached to its parent
        self.inhibit_rules = [InhibitRule(parse_matchers(r.source_matchers), parse_matchers(r.target_matchers), r.equal)
                              for r in cfg.inhibit_rules]
        self.suppress = SuppressionIndex((), (), inventory)
        self.incidents: dict[str, Incident] = {}     # incidents not resolved/closed
        self.planner = NotificationPlanner(cfg, inventory.site, store, on_trigger)
        self.on_stop_escalation = on_stop_escalation
        self.owns = owns
        self.post_commit: list[Callable[[], None]] = []
        self._changes: list[AlarmChange] = []
        self._dirty: set[str] = set()
        self._action_seq = 0
        self._settled: dict[str, Incident] = {}                  # resolved/closed incidents still referenced
        self.data_now_ns = 0
        self.stats = defaultdict(int)
        self.raised_by_severity: dict[str, int] = defaultdict(int)

    # ----- state -----------------------------------------------------------------------------
    def load(self, now_ns: int, current=None) -> None:
        """Restore state from the database (after a restart); `current` (a current-state view,
        `dcops.store.current`) tells the staleness checks when each component last reported."""
        if current is not None:
            self.engine.seed(current)
        if self.store is None:
            return
        alarms = self.store.listed_alarms()
        if self.owns is not None:  # a database shared by the workers of a partitioned alerter
            alarms = [a for a in alarms if self.owns(a.component)]
        self.manager.load(alarms)
        self.links = self.correlator.explain(list(self.manager.alarms.values()))  # known: no timeline entries again
        for inc in self.store.incidents_in([s.value for s in (IncidentState.OPEN, *_ACK_STATES)]):
            if self._owns_incident(inc):
                self.incidents[inc.id] = inc
        self._action_seq = self.store.last_action_seq()
        self.reload_suppressions(now_ns)

    def _owns_incident(self, inc: Incident) -> bool:
        """An incident belongs to the worker that holds its alarms (one opened by an operator
        without alarms: to the worker of its root component, or of the first domain)."""
        if self.owns is None:
            return True
        if inc.alarm_ids:
            return any(a in self.manager.alarms for a in inc.alarm_ids)
        return self.owns(inc.root_component or "")

    def reload_suppressions(self, now_ns: int) -> None:
        if self.store is not None:
            sil, mw = self.store.suppressions(now_ns)
            self.suppress = SuppressionIndex(sil, mw, self.inv)

    # ----- feeds -----------------------------------------------------------------------------
    def _apply(self, signals: Iterable[AlarmSignal]) -> None:
        if self.owns is not None:  # another worker correlates the other domains' alarms
            signals = [s for s in signals if self.owns(s.component)]
        for ch in self.manager.apply(signals):
            self._changes.append(ch)
            self._dirty.add(ch.alarm.id)
            self.stats["signals_changed"] += 1

    def feed_batch(self, batch) -> None:
        if len(batch):
            self.data_now_ns = max(self.data_now_ns, int(batch.time_ns.max()))
        self._apply(self.engine.on_batch(batch))

    def feed_events(self, events) -> None:
        for e in events:
            self.data_now_ns = max(self.data_now_ns, e.time_ns)
        self._apply(self.engine.on_events(events))

    def feed_findings(self, findings) -> None:
        for f in findings:
            self.data_now_ns = max(self.data_now_ns, int(f.time_ns))
        self._apply(self.engine.on_findings(findings))

    def feed_signals(self, signals: Iterable[AlarmSignal]) -> None:
        """Signals from outside the rule engine (the Alertmanager webhook)."""
        signals = list(signals)
        for s in signals:
            self.data_now_ns = max(self.data_now_ns, s.time_ns)
        self._apply(signals)

    # ----- the cycle -------------------------------------------------------------------------
    def reconcile(self, now_ns: int) -> CycleWrite:
        w = CycleWrite()
        self._operator_actions(now_ns, w)
        self._apply(self.engine.on_tick(now_ns))
        for ch in self.manager.tick(now_ns):
            self._changes.append(ch)
            self._dirty.add(ch.alarm.id)
        self._correlate(now_ns, w)
        joined = self._group(now_ns, w)
        with_alarms = {a.incident_id for a in self.manager.alarms.values()}
        for inc in list(self.incidents.values()):  # every alarm left the list (cleared and acknowledged)
            if inc.opened_by == "dcops" and inc.id not in with_alarms:
                self._resolve(inc, now_ns, w, "all alarms cleared")
        self._timeline_for_changes(w, joined)
        self._renotify_unsuppressed(now_ns, w)
        for aid in self._dirty:
            a = self.manager.alarms.get(aid)
            if a is None:
                continue
            w.alarms[aid] = a
        for ch in self._changes:
            if ch.alarm.id not in w.alarms and ch.alarm.id not in self.manager.alarms:
                w.alarms[ch.alarm.id] = ch.alarm  # left the list (cleared and acknowledged)
            if ch.kind is TK.ALARM_RAISED:  # counted with the severity correlation gave it
                self.raised_by_severity[w.alarms.get(ch.alarm.id, ch.alarm).severity.value] += 1
        self._changes.clear()
        self._dirty.clear()
        if len(self._settled) > 1000:  # keep only settled incidents that listed alarms still name
            named = {a.incident_id for a in self.manager.alarms.values()}
            self._settled = {k: v for k, v in self._settled.items() if k in named}
        return w

    def _correlate(self, now_ns: int, w: CycleWrite | None = None) -> None:
        alarms = self.manager.alarms
        fresh: dict[str, Link] = {}
        for _ in range(4):  # grouping roots can stack (servers > rack > row): settle in a few passes
            fresh = self.correlator.explain(list(alarms.values()))
            if self.correlator.table and not self._synthesise(fresh, now_ns):
                break
        listed = list(alarms.values())
        links = {k: v.parent for k, v in fresh.items()}
        for a in listed:  # a cleared symptom nothing explains any more stays with its incident's root
            if a.id not in links and not a.active and a.root_alarm_id and a.root_alarm_id in alarms:
                links[a.id] = a.root_alarm_id
        for aid, link in fresh.items():
            old = self.links.get(aid)
            a = alarms[aid]
            if a.incident_id and w is not None and (old is None or old.parent != link.parent):
                w.timeline.append((a.incident_id, entry(now_ns, TK.ROOT_CAUSE, f"{_what(a)}: {link.why}", alarm_id=aid,
                                                        why=link.why, correlation=link.rule, parent=link.parent)))
        self.links = {k: v for k, v in fresh.items()}
        active = [a for a in listed if a.active]
        roots = Correlator.roots(links)
        by_comp: dict[str, list[Alarm]] = defaultdict(list)
        for a in active:
            by_comp[a.component].append(a)
        inhib = inhibited(active, self.inhibit_rules) if self.inhibit_rules else {}
        symptoms: dict[str, list[str]] = defaultdict(list)
        for aid, rid in roots.items():
            symptoms[rid].append(aid)
        for a in listed:
            upd: dict = {}
            rid = roots.get(a.id)
            if rid != a.root_alarm_id:
                upd["root_alarm_id"] = rid
            corr = tuple(sorted(symptoms.get(a.id, ())))
            if corr != a.correlated or bool(corr) != a.root_cause:
                upd["correlated"] = corr
                upd["root_cause"] = bool(corr)
            if a.active:
                assess = assess_redundancy(a, by_comp, self.inv) if "unit_lost" in a.labels or "unit_at_risk" in a.labels else None
                if assess is not None and (assess[0] != a.severity or assess[1] != a.additional_text):
                    upd["severity"], upd["additional_text"] = assess
                sup = self.suppress.check(a, now_ns) if self.suppress else None
                by = tuple(sup.by) if sup else ()
                if a.id in inhib:
                    by += (f"inhibited:{inhib[a.id]}",)
                if by != a.suppressed_by or (bool(sup and sup.expected)) != a.expected:
                    upd["suppressed_by"], upd["expected"] = by, bool(sup and sup.expected)
            if upd:
                alarms[a.id] = a.evolve(**upd)
                self._dirty.add(a.id)

    def _synthesise(self, links: Mapping[str, Link], now_ns: int) -> bool:
        """Raise grouping roots proposed for clusters nothing explains; clear those that explain
        no active alarm any more. True when something changed (explain again)."""
        signals = grouping_signals(self.manager, links, self.inv, self.cfg.grouping.sibling_window_s, now_ns)
        if not signals:
            return False
        n = len(self._changes)
        self._apply(signals)
        return len(self._changes) > n

    def _severity(self, root: Alarm | None, live: list[Alarm]) -> PerceivedSeverity:
        return incident_severity(root, live, self.inv)

    def _group(self, now_ns: int, w: CycleWrite) -> set[str]:
        alarms = self.manager.alarms
        groups: dict[str, list[Alarm]] = defaultdict(list)
        for a in alarms.values():
            groups[a.root_alarm_id if a.root_alarm_id in alarms else a.id].append(a)
        joined: set[str] = set()
        gw = self.cfg.grouping
        min_rank = SEVERITY_RANK[gw.incident_min_severity]
        for gid, members in groups.items():
            root = alarms.get(gid)
            live = [m for m in members if m.active]
            inc = self._incident_for(root, members, now_ns, w)
            if inc is False:
                continue
            if inc is None:
                if not live or SEVERITY_RANK[worst(live)] < min_rank:
                    continue
                if now_ns - min(m.raised_ns for m in members) < gw.group_wait_s * _NS:
                    continue
                inc = self._open(root, members, now_ns, w)
                joined.update(m.id for m in members)
            for m in [alarms[x.id] for x in members]:
                if m.incident_id != inc.id:
                    if m.incident_id and m.incident_id != inc.id:
                        self._leave(m, inc, now_ns, w)
                    alarms[m.id] = m.evolve(incident_id=inc.id)
                    self._dirty.add(m.id)
                    if m.id not in joined:
                        w.timeline.append((inc.id, entry(now_ns, TK.ALARM_RAISED, f"{_what(m)} joined", alarm_id=m.id,
                                                         **self._why_data(m.id))))
                        joined.add(m.id)
            self._refresh(inc, root, [alarms[m.id] for m in members], now_ns, w)
        return joined

    def _incident_for(self, root: Alarm | None, members: list[Alarm], now_ns: int, w: CycleWrite) -> Incident | None | bool:
        """The group's incident; False when it belongs to an incident an operator resolved or
        closed while its alarms were still active (it stays there, no new incident opens)."""
        ids = [m.incident_id for m in ([root] if root else []) + members if m.incident_id]
        for iid in ids:
            inc = self.incidents.get(iid)
            if inc is not None:
                return inc
        raised_again = {ch.alarm.id for ch in self._changes if ch.kind is TK.ALARM_RAISED}
        for iid in ids:  # resolved (or closed) meanwhile
            inc = self._settled.get(iid)
            if inc is None and self.store is not None:
                inc = self.store.incident(iid)
                if inc is not None:
                    self._settled[iid] = inc
            if inc is None:
                continue
            if inc.state is IncidentState.RESOLVED and root is not None and not root.active and root.id not in raised_again:
                # the root cleared and the incident resolved; what joins now is the recovery (the
                # room settling, hosts booting): kept on the incident, which stays resolved, no page
                self._settling(inc, members, now_ns, w)
                return False
            if inc.state is IncidentState.RESOLVED and any(m.active and m.id in raised_again for m in members):
                epoch = int(inc.labels.get("epoch", "0")) + 1
                inc = _evolve(inc, state=IncidentState.OPEN, resolved_ns=None, updated_ns=now_ns,
                              labels={**inc.labels, "epoch": str(epoch), "notified": ""})
                self.incidents[inc.id] = inc
                self._settled.pop(inc.id, None)
                w.reopened[inc.id] = now_ns
                w.incidents[inc.id] = inc
                w.timeline.append((inc.id, entry(now_ns, TK.STATE, "reopened: an alarm was raised again", state="open")))
                self._notify(inc, IncidentAction.TRIGGER, now_ns, w)
                return self.incidents[inc.id]
            if not any(m.id in raised_again for m in members):
                return False
        return None

    def _settling(self, inc: Incident, members: list[Alarm], now_ns: int, w: CycleWrite) -> None:
        alarms = self.manager.alarms
        for m in members:
            if m.incident_id is None and m.id in alarms:
                alarms[m.id] = alarms[m.id].evolve(incident_id=inc.id)
                self._dirty.add(m.id)
                w.timeline.append((inc.id, entry(now_ns, TK.ALARM_RAISED, f"{_what(m)} joined while settling after "
                                                 "the root cleared (recovery; no page)", alarm_id=m.id,
                                                 **self._why_data(m.id))))

    def _open(self, root: Alarm | None, members: list[Alarm], now_ns: int, w: CycleWrite) -> Incident:
        head = root or members[0]
        live = [m for m in members if m.active]
        sev = self._severity(root, live) if live else worst(members)
        n_sym = len(members) - 1
        inc = Incident(id=self._new_id(), title=incident_title(head, n_sym), state=IncidentState.OPEN, severity=sev,
                       opened_ns=now_ns, updated_ns=now_ns, root_alarm_id=head.id if n_sym else None,
                       root_component=head.component, alarm_ids=tuple(m.id for m in members),
                       labels=incident_labels(head, sev))
        self.incidents[inc.id] = inc
        w.new_incidents[inc.id] = inc
        self.stats["incidents"] += 1
        for m in members:
            if m.incident_id and m.incident_id != inc.id:
                self._leave(m, inc, now_ns, w)
            self.manager.alarms[m.id] = self.manager.alarms[m.id].evolve(incident_id=inc.id)
            self._dirty.add(m.id)
        w.timeline.append((inc.id, entry(now_ns, TK.STATE, f"opened: {inc.title}", state="open")))
        for m in sorted(members, key=lambda m: (m.raised_ns, m.id)):
            w.timeline.append((inc.id, entry(m.raised_ns, TK.ALARM_RAISED, _what(m), alarm_id=m.id, **self._why_data(m.id))))
        if n_sym:
            w.timeline.append((inc.id, entry(now_ns, TK.ROOT_CAUSE, f"root cause {head.managed_object}: "
                                             f"{head.specific_problem}; explains {n_sym} alarm(s)", alarm_id=head.id)))
        alarms = self.manager.alarms
        group_members = sorted((alarms[m.id] for m in members), key=lambda a: (a.id != head.id, a.raised_ns))
        self._notify(inc, IncidentAction.TRIGGER, now_ns, w, group=(alarms[head.id], group_members))
        return self.incidents[inc.id]

    def _why_data(self, aid: str) -> dict:
        link = self.links.get(aid)
        return {"why": link.why, "correlation": link.rule, "parent": link.parent} if link is not None else {}

    def _leave(self, m: Alarm, into: Incident, now_ns: int, w: CycleWrite) -> None:
        old = self.incidents.get(m.incident_id)
        w.timeline.append((m.incident_id, entry(now_ns, TK.ROOT_CAUSE, f"{_what(m)} moved to incident {into.id} "
                                                f"({into.title})", alarm_id=m.id, merged_into=into.id)))
        if old is not None and not any(a.incident_id == old.id and a.id != m.id for a in self.manager.alarms.values()):
            self._resolve(old, now_ns, w, f"merged into incident {into.id}")

    def _refresh(self, inc: Incident, root: Alarm | None, members: list[Alarm], now_ns: int, w: CycleWrite) -> None:
        inc = self.incidents.get(inc.id)
        if inc is None:
            return
        live = [m for m in members if m.active]
        head = root if root is not None and root.root_cause else None
        sev = self._severity(root, live) if live else inc.severity
        upd = {}
        if head is not None and inc.root_alarm_id != head.id:
            upd.update(root_alarm_id=head.id, root_component=head.component)
            w.timeline.append((inc.id, entry(now_ns, TK.ROOT_CAUSE, f"root cause {head.managed_object}: "
                                             f"{head.specific_problem}", alarm_id=head.id)))
        title_head = head or (root if root is not None else members[0])
        title = incident_title(title_head, len(members) - 1) if (head or inc.opened_by == "dcops") else inc.title
        if title != inc.title:
            upd["title"] = title
        worse = SEVERITY_RANK[sev] > SEVERITY_RANK[inc.severity]
        if sev != inc.severity:
            upd["severity"] = sev
            upd["labels"] = {**inc.labels, "severity": sev.value}
        if upd:
            was = inc.severity
            inc = _evolve(inc, updated_ns=now_ns, **upd)
            self.incidents[inc.id] = inc
            if inc.id not in w.new_incidents:
                w.incidents[inc.id] = inc
            else:
                w.new_incidents[inc.id] = inc
            if worse and inc.id not in w.new_incidents and inc.state is IncidentState.OPEN \
                    and inc.labels.get("notified") == "sent":
                # worse than what was paged (a second unit of the zone lost, a feed gone dark):
                # page again with the new severity, once per severity per epoch; routes that
                # match the new severity get it too
                w.timeline.append((inc.id, entry(now_ns, TK.STATE, f"severity raised {was.value} -> {sev.value}: "
                                                 "notifying", severity=sev.value)))
                self._notify(inc, IncidentAction.TRIGGER, now_ns, w, suffix=f"severity-{sev.value}")
        if not live and all(not m.active for m in members) and inc.opened_by == "dcops":
            self._resolve(inc, now_ns, w, "all alarms cleared")

    def _resolve(self, inc: Incident, now_ns: int, w: CycleWrite, why: str) -> None:
        self.incidents.pop(inc.id, None)
        self._settled[inc.id] = _evolve(inc, state=IncidentState.RESOLVED, resolved_ns=now_ns)
        w.resolved[inc.id] = now_ns
        w.timeline.append((inc.id, entry(now_ns, TK.STATE, f"resolved: {why}", state="resolved")))
        if inc.labels.get("notified") != "suppressed":
            self._notify(_evolve(inc, state=IncidentState.RESOLVED), IncidentAction.RESOLVE, now_ns, w)
        if self.on_stop_escalation is not None:
            self.post_commit.append(lambda iid=inc.id: self.on_stop_escalation(iid))

    def _timeline_for_changes(self, w: CycleWrite, joined: set[str]) -> None:
        kinds = {TK.ALARM_RAISED: "raised again", TK.ALARM_CHANGED: "changed", TK.ALARM_CLEARED: "cleared"}
        for ch in self._changes:
            a = self.manager.alarms.get(ch.alarm.id, ch.alarm)
            if not a.incident_id or a.id in joined:
                continue
            w.timeline.append((a.incident_id, entry(ch.alarm.changed_ns, ch.kind, f"{_what(a)} {kinds[ch.kind]}", alarm_id=a.id,
                                                    severity=ch.alarm.severity.value)))

    # ----- notifications ---------------------------------------------------------------------
    def _members(self, inc: Incident) -> tuple[Alarm | None, list[Alarm]]:
        members = [a for a in self.manager.alarms.values() if a.incident_id == inc.id]
        root = self.manager.alarms.get(inc.root_alarm_id or "") or (members[0] if len(members) == 1 else None)
        members.sort(key=lambda a: (a.id != (root.id if root else None), a.raised_ns))
        return root, members

    def _notify(self, inc: Incident, action: IncidentAction, now_ns: int, w: CycleWrite,
                group: tuple[Alarm | None, list[Alarm]] | None = None, suffix: str = "") -> None:
        """`suffix`: a later trigger of the same incident (severity raised), which neither
        repeats the first one's idempotency key nor re-arms its escalation."""
        root, members = group if group is not None else self._members(inc)
        inc2 = self.planner.plan(inc, action, root, members, now_ns, w, self.post_commit, suffix=suffix)
        if action is IncidentAction.TRIGGER:
            self.incidents[inc.id] = inc2
            (w.new_incidents if inc.id in w.new_incidents else w.incidents)[inc.id] = inc2
        self.stats["notifications"] = self.planner.planned

    def escalate(self, inc: Incident, targets: Mapping[str, str | None], level: str, now_ns: int) -> CycleWrite:
        """Notify escalation targets (receiver -> on-call user or None) for an unacknowledged incident."""
        root, members = self._members(inc)
        return self.planner.escalate(inc, root, members, targets, level, now_ns)

    def _renotify_unsuppressed(self, now_ns: int, w: CycleWrite) -> None:
        for inc in list(self.incidents.values()):
            if inc.labels.get("notified") != "suppressed" or inc.state is not IncidentState.OPEN:
                continue
            root, _ = self._members(inc)
            if root is not None and not root.suppressed_by:
                w.timeline.append((inc.id, entry(now_ns, TK.STATE, "suppression ended while open: notifying")))
                self._notify(inc, IncidentAction.TRIGGER, now_ns, w)

    # ----- operator actions (written by the repository, applied here) ------------------------
    def _operator_actions(self, now_ns: int, w: CycleWrite) -> None:
        if self.store is None:
            return
        for act in self.store.operator_actions(self._action_seq):
            self._action_seq = act.seq
            kind, tid, data = act.action, act.target_id, dict(act.data or {})
            if kind == "ack_alarm" and tid in self.manager.alarms:
                self.manager.acknowledge(tid, act.user, act.time_ns)
            elif kind == "clear_alarm" and tid in self.manager.alarms and self.manager.alarms[tid].active:
                ch = self.manager.clear(tid, act.user, act.time_ns)
                self._changes.append(ch)
                self._dirty.add(tid)
            elif kind in ("silence", "maintenance", "expire_silence"):
                self.reload_suppressions(now_ns)
            elif kind == "incident_opened":
                inc = self.store.incident(tid)
                if inc is not None:
                    self.incidents[tid] = inc
                    for aid in data.get("alarm_ids", ()):
                        if aid in self.manager.alarms:
                            self.manager.alarms[aid] = self.manager.alarms[aid].evolve(incident_id=tid)
            elif kind == "incident_state":
                self._incident_state(tid, IncidentState(data["state"]), act.user, now_ns, w)

    def _incident_state(self, iid: str, state: IncidentState, user: str, now_ns: int, w: CycleWrite) -> None:
        inc = self.incidents.get(iid) or (self.store.incident(iid) if self.store else None)
        if inc is None:
            return
        prev = inc.state
        inc = _evolve(inc, state=state)
        if state in (IncidentState.OPEN, *_ACK_STATES):
            self.incidents[iid] = inc
            self._settled.pop(iid, None)
        else:
            self.incidents.pop(iid, None)
            self._settled[iid] = inc
        notified = inc.labels.get("notified") == "sent"
        if state is IncidentState.ACKNOWLEDGED and prev is IncidentState.OPEN:
            if notified:
                self._notify(inc, IncidentAction.ACKNOWLEDGE, now_ns, w)
            if self.on_stop_escalation is not None:
                self.post_commit.append(lambda: self.on_stop_escalation(iid))
        elif state in (IncidentState.RESOLVED, IncidentState.CLOSED) and prev not in (IncidentState.RESOLVED, IncidentState.CLOSED):
            if notified:
                self._notify(inc, IncidentAction.RESOLVE, now_ns, w)
            if self.on_stop_escalation is not None:
                self.post_commit.append(lambda: self.on_stop_escalation(iid))

    def take_post_commit(self) -> list[Callable[[], None]]:
        out, self.post_commit = self.post_commit, []
        return out


def _what(a: Alarm) -> str:
    return f"{a.severity.value} {a.probable_cause.value} on {a.managed_object}: {a.specific_problem}"


def _evolve(inc: Incident, **changes) -> Incident:
    from dataclasses import replace
    return replace(inc, **changes)

