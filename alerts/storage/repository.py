"""The alarm and incident API for the console and runbooks: plain methods on `Repository`.

Reads return the frozen dataclasses of `dcops.alarm_types`; operator actions take the
operator's user name, write their effect at once (so the console sees it immediately),
append to the incident timeline, and record an entry in `operator_actions` (the audit trail
of this stage), from which the running alerter learns them (to stop escalations and send
PagerDuty acknowledge/resolve). Bad input raises `ValueError` / `KeyError` with a message
fit to show an operator.

    repo = Repository("sqlite:///var/dcops.sqlite")
    repo.list_alarms(min_severity="major")          # the NOC list, most severe first
    repo.acknowledge_alarm(alarm_id, user="alice")
    inc = repo.get_incident(incident_id)             # with timeline and alarm ids
    repo.set_incident_state(inc.id, "mitigating", user="alice", note="moving load")
    repo.create_maintenance("CRAC-1", start, end, author="bob", reason="filter change")
"""

from __future__ import annotations

import time
import uuid
from typing import Callable, Iterable, Sequence

from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from dcops.alerts.storage.tables import (AlarmRow, IncidentRow, OperatorActionRow, OutboxRow, SilenceRow, TimelineRow, open_engine,
                       row_to_alarm, row_to_entry, row_to_incident, row_to_notification, row_to_silence, silence_to_row)
from dcops.alerts.alarms.matchers import parse_matchers
from dcops.alarm_types import (INCIDENT_TRANSITIONS, SEVERITY_RANK, Alarm, AlarmListState, Incident, IncidentState,
                               MaintenanceWindow, Matcher, Notification, PerceivedSeverity, Recurrence, Silence,
                               TimelineEntry, TimelineKind)
from dcops.topology import Inventory

__all__ = ["Repository"]

_NS = 1_000_000_000


def _user(user: str) -> str:
    if not isinstance(user, str) or not user.strip():
        raise ValueError("an operator user name is required")
    return user.strip()


class Repository:
    def __init__(self, db: str | Engine, inventory: Inventory | None = None,
                 clock: Callable[[], float] = time.time, audit=None) -> None:
        """`audit`: a `dcops.alerts.storage.audit.AuditLog`; when given, every operator action is also appended
        to the hash-chained, append-only audit log in the same transaction."""
        self.engine = open_engine(db) if isinstance(db, str) else db
        self.inventory = inventory
        self.clock = clock
        self.audit = audit

    def _now(self) -> int:
        return int(self.clock() * _NS)

    def _action(self, s: Session, user: str, action: str, kind: str, target: str, **data) -> None:
        now = self._now()
        s.add(OperatorActionRow(time_ns=now, user=user, action=action, target_kind=kind, target_id=target, data=data))
        if self.audit is not None:
            self.audit.append(actor=user, role=str(data.get("role", "")), action=action, target_kind=kind,
                              target_id=target, data=data, session=s, time_ns=now)

    def _timeline(self, s: Session, incident_id: str, kind: TimelineKind, text: str, actor: str, **kw) -> None:
        s.add(TimelineRow(incident_id=incident_id, time_ns=self._now(), kind=kind.value, text=text, actor=actor,
                          alarm_id=kw.pop("alarm_id", None), data=kw))

    # ----- alarms ----------------------------------------------------------------------------
    def list_alarms(self, *, states: Iterable[AlarmListState | str] | None = None, min_severity: str | None = None,
                    component: str | None = None, incident_id: str | None = None, include_expected: bool = True,
                    include_suppressed: bool = True, text: str | None = None, limit: int = 1000) -> list[Alarm]:
        """The alarm list (listed alarms: all but cleared-and-acknowledged), most severe and newest
        first. `component` matches the component name or a prefix of the managed-object path
        (`site/H1/R1` gives everything in row R1)."""
        with Session(self.engine) as s:
            q = select(AlarmRow).where(AlarmRow.listed.is_(True))
            if incident_id is not None:
                q = select(AlarmRow).where(AlarmRow.incident_id == incident_id)
            if component:
                q = q.where((AlarmRow.component == component) | (AlarmRow.managed_object == component)
                            | AlarmRow.managed_object.startswith(component.rstrip("/") + "/"))
            rows = s.scalars(q).all()
        alarms = [row_to_alarm(r) for r in rows]
        if states is not None:
            want = {AlarmListState(x) for x in states}
            alarms = [a for a in alarms if a.list_state in want]
        if min_severity is not None:
            floor = SEVERITY_RANK[PerceivedSeverity(min_severity)]
            alarms = [a for a in alarms if SEVERITY_RANK[a.severity] >= floor]
        if not include_expected:
            alarms = [a for a in alarms if not a.expected]
        if not include_suppressed:
            alarms = [a for a in alarms if not a.suppressed_by]
        if text:
            t = text.lower()
            alarms = [a for a in alarms if t in a.specific_problem.lower() or t in a.managed_object.lower()]
        alarms.sort(key=lambda a: (a.active, SEVERITY_RANK[a.severity], a.raised_ns), reverse=True)
        return alarms[:limit]

    def get_alarm(self, alarm_id: str) -> Alarm:
        with Session(self.engine) as s:
            r = s.get(AlarmRow, alarm_id)
            if r is None:
                raise KeyError(f"no alarm {alarm_id!r}")
            return row_to_alarm(r)

    def acknowledge_alarm(self, alarm_id: str, user: str) -> Alarm:
        user = _user(user)
        with Session(self.engine) as s, s.begin():
            r = s.get(AlarmRow, alarm_id)
            if r is None:
                raise KeyError(f"no alarm {alarm_id!r}")
            if r.acknowledged_ns is None:
                r.acknowledged_ns, r.acknowledged_by = self._now(), user
                r.listed = r.cleared_ns is None
                self._action(s, user, "ack_alarm", "alarm", alarm_id)
                if r.incident_id:
                    self._timeline(s, r.incident_id, TimelineKind.NOTE, f"alarm on {r.managed_object} acknowledged", user,
                                   alarm_id=alarm_id)
            return row_to_alarm(r)

    def clear_alarm(self, alarm_id: str, user: str) -> None:
        """Ask the alerter to clear an alarm by hand (e.g. an event alarm with no clearing event)."""
        user = _user(user)
        with Session(self.engine) as s, s.begin():
            r = s.get(AlarmRow, alarm_id)
            if r is None:
                raise KeyError(f"no alarm {alarm_id!r}")
            if r.cleared_ns is not None:
                raise ValueError(f"alarm {alarm_id} is already cleared")
            self._action(s, user, "clear_alarm", "alarm", alarm_id)

    # ----- incidents -------------------------------------------------------------------------
    def list_incidents(self, *, states: Iterable[IncidentState | str] | None = None, since_ns: int | None = None,
                       limit: int = 200) -> list[Incident]:
        """Incidents newest first, with alarm ids (timeline left out: use `get_incident`)."""
        with Session(self.engine) as s:
            q = select(IncidentRow)
            if states is not None:
                q = q.where(IncidentRow.state.in_([IncidentState(x).value for x in states]))
            if since_ns is not None:
                q = q.where(IncidentRow.opened_ns >= since_ns)
            rows = s.scalars(q.order_by(IncidentRow.opened_ns.desc()).limit(limit)).all()
            ids = [r.id for r in rows]
            members: dict[str, list[str]] = {}
            if ids:
                for aid, iid in s.execute(select(AlarmRow.id, AlarmRow.incident_id).where(AlarmRow.incident_id.in_(ids))):
                    members.setdefault(iid, []).append(aid)
            return [row_to_incident(r, members.get(r.id, ())) for r in rows]

    def get_incident(self, incident_id: str) -> Incident:
        with Session(self.engine) as s:
            r = s.get(IncidentRow, incident_id)
            if r is None:
                raise KeyError(f"no incident {incident_id!r}")
            alarm_ids = s.scalars(select(AlarmRow.id).where(AlarmRow.incident_id == incident_id)
                                  .order_by(AlarmRow.raised_ns)).all()
            tl = s.scalars(select(TimelineRow).where(TimelineRow.incident_id == incident_id)
                           .order_by(TimelineRow.time_ns, TimelineRow.seq)).all()
            return row_to_incident(r, alarm_ids, [row_to_entry(t) for t in tl])

    def incident_alarms(self, incident_id: str) -> list[Alarm]:
        """The incident's alarms, root cause first."""
        alarms = self.list_alarms(incident_id=incident_id, limit=100_000)
        return sorted(alarms, key=lambda a: (not a.root_cause, a.raised_ns))

    def set_incident_state(self, incident_id: str, state: IncidentState | str, user: str, note: str = "") -> Incident:
        user = _user(user)
        state = IncidentState(state)
        with Session(self.engine) as s, s.begin():
            r = s.get(IncidentRow, incident_id)
            if r is None:
                raise KeyError(f"no incident {incident_id!r}")
            cur = IncidentState(r.state)
            if state is cur:
                return row_to_incident(r)
            if state not in INCIDENT_TRANSITIONS[cur]:
                allowed = ", ".join(sorted(x.value for x in INCIDENT_TRANSITIONS[cur])) or "none (closed is final)"
                raise ValueError(f"incident {incident_id} is {cur.value}; it can go to: {allowed}")
            now = self._now()
            r.state, r.updated_ns = state.value, now
            if state is IncidentState.ACKNOWLEDGED and r.acknowledged_ns is None:
                r.acknowledged_ns, r.acknowledged_by = now, user
            if state is IncidentState.RESOLVED:
                r.resolved_ns = now
            if state is IncidentState.CLOSED:
                r.closed_ns = now
                r.resolved_ns = r.resolved_ns or now
            if state is IncidentState.OPEN:
                r.resolved_ns = None
            text = f"{cur.value} -> {state.value}" + (f": {note}" if note else "")
            self._timeline(s, incident_id, TimelineKind.STATE, text, user, state=state.value, previous=cur.value)
            self._action(s, user, "incident_state", "incident", incident_id, state=state.value, previous=cur.value)
            return row_to_incident(r)

    def acknowledge_incident(self, incident_id: str, user: str) -> Incident:
        return self.set_incident_state(incident_id, IncidentState.ACKNOWLEDGED, user)

    def add_note(self, incident_id: str, user: str, text: str) -> TimelineEntry:
        return self.add_timeline(incident_id, TimelineKind.NOTE, text, user)

    def add_timeline(self, incident_id: str, kind: TimelineKind | str, text: str, actor: str, **data) -> TimelineEntry:
        """Append to an incident's timeline (notes; runbook steps from issue 5 use kind 'runbook')."""
        actor = _user(actor)
        kind = TimelineKind(kind)
        if not text or not text.strip():
            raise ValueError("timeline text is empty")
        with Session(self.engine) as s, s.begin():
            if s.get(IncidentRow, incident_id) is None:
                raise KeyError(f"no incident {incident_id!r}")
            row = TimelineRow(incident_id=incident_id, time_ns=self._now(), kind=kind.value, text=text.strip(), actor=actor,
                              data=data)
            s.add(row)
            s.execute(update(IncidentRow).where(IncidentRow.id == incident_id).values(updated_ns=row.time_ns))
            self._action(s, actor, kind.value, "incident", incident_id)
            s.flush()
            return row_to_entry(row)

    def open_incident(self, title: str, user: str, alarm_ids: Sequence[str] = (),
                      severity: PerceivedSeverity | str = PerceivedSeverity.MAJOR) -> Incident:
        """An operator opens an incident (optionally taking alarms into it)."""
        user = _user(user)
        if not title or not title.strip():
            raise ValueError("an incident needs a title")
        sev = PerceivedSeverity(severity)
        now = self._now()
        iid = uuid.uuid4().hex[:16]
        with Session(self.engine) as s, s.begin():
            missing = [a for a in alarm_ids if s.get(AlarmRow, a) is None]
            if missing:
                raise KeyError(f"no alarm(s) {', '.join(missing)}")
            s.add(IncidentRow(id=iid, title=title.strip(), state=IncidentState.OPEN.value, severity=sev.value, opened_ns=now,
                              updated_ns=now, opened_by=user, labels={"severity": sev.value, "epoch": "0"}))
            s.flush()
            if alarm_ids:
                s.execute(update(AlarmRow).where(AlarmRow.id.in_(list(alarm_ids))).values(incident_id=iid))
            self._timeline(s, iid, TimelineKind.STATE, f"opened by {user}: {title.strip()}", user, state="open")
            self._action(s, user, "incident_opened", "incident", iid, alarm_ids=list(alarm_ids))
        return self.get_incident(iid)

    # ----- silences and maintenance ----------------------------------------------------------
    def create_silence(self, matchers: Sequence[str | Matcher], starts_ns: int, ends_ns: int, author: str, reason: str,
                       recurrence: Recurrence | None = None) -> Silence:
        author = _user(author)
        ms = parse_matchers(matchers)
        if not ms:
            raise ValueError("a silence needs at least one matcher")
        self._check_window(starts_ns, ends_ns, reason, recurrence)
        sil = Silence(id=uuid.uuid4().hex[:16], matchers=ms, starts_ns=int(starts_ns), ends_ns=int(ends_ns), author=author,
                      reason=reason.strip(), recurrence=recurrence, created_ns=self._now())
        with Session(self.engine) as s, s.begin():
            s.add(silence_to_row(sil))
            self._action(s, author, "silence", "silence", sil.id, matchers=[str(m) for m in ms], reason=sil.reason)
        return sil

    def create_maintenance(self, component: str, starts_ns: int, ends_ns: int, author: str, reason: str,
                           recurrence: Recurrence | None = None) -> MaintenanceWindow:
        author = _user(author)
        if self.inventory is not None:
            component = self.inventory.resolve(component).name  # KeyError names the unknown component
        self._check_window(starts_ns, ends_ns, reason, recurrence)
        mw = MaintenanceWindow(id=uuid.uuid4().hex[:16], component=component, starts_ns=int(starts_ns), ends_ns=int(ends_ns),
                               author=author, reason=reason.strip(), recurrence=recurrence, created_ns=self._now())
        with Session(self.engine) as s, s.begin():
            s.add(silence_to_row(mw))
            self._action(s, author, "maintenance", "silence", mw.id, component=component, reason=mw.reason)
        return mw

    @staticmethod
    def _check_window(starts_ns: int, ends_ns: int, reason: str, recurrence: Recurrence | None) -> None:
        if ends_ns <= starts_ns:
            raise ValueError("the end must be after the start")
        if not reason or not reason.strip():
            raise ValueError("a reason is required")
        if recurrence is not None:
            from dcops.alerts.alarms.silences import parse_hhmm
            from zoneinfo import ZoneInfo
            parse_hhmm(recurrence.start)
            ZoneInfo(recurrence.timezone)
            if not recurrence.weekdays or any(d not in range(7) for d in recurrence.weekdays):
                raise ValueError("recurrence weekdays must be 0 (Monday) .. 6 (Sunday)")
            if recurrence.duration_s <= 0:
                raise ValueError("recurrence duration must be positive")

    def expire_silence(self, silence_id: str, user: str) -> None:
        user = _user(user)
        with Session(self.engine) as s, s.begin():
            r = s.get(SilenceRow, silence_id)
            if r is None:
                raise KeyError(f"no silence or maintenance window {silence_id!r}")
            r.expired_ns = self._now()
            self._action(s, user, "expire_silence", "silence", silence_id)

    def list_silences(self, *, include_expired: bool = False) -> list[Silence | MaintenanceWindow]:
        now = self._now()
        with Session(self.engine) as s:
            rows = s.scalars(select(SilenceRow).order_by(SilenceRow.starts_ns)).all()
        items = [row_to_silence(r) for r in rows]
        if not include_expired:
            items = [i for i in items if i.ends_ns > now and (i.expired_ns is None or i.expired_ns > now)]
        return items

    # ----- notifications and audit -----------------------------------------------------------
    def notifications(self, *, incident_id: str | None = None, status: str | None = None, limit: int = 500) -> list[Notification]:
        with Session(self.engine) as s:
            q = select(OutboxRow)
            if incident_id is not None:
                q = q.where(OutboxRow.incident_id == incident_id)
            if status is not None:
                q = q.where(OutboxRow.status == status)
            return [row_to_notification(r) for r in s.scalars(q.order_by(OutboxRow.created_ns.desc()).limit(limit))]

    def delivery_summary(self) -> dict[str, int]:
        with Session(self.engine) as s:
            return {st: int(n) for st, n in s.execute(select(OutboxRow.status, func.count()).group_by(OutboxRow.status))}

    def operator_actions(self, limit: int = 200) -> list[dict]:
        with Session(self.engine) as s:
            rows = s.scalars(select(OperatorActionRow).order_by(OperatorActionRow.seq.desc()).limit(limit)).all()
            return [{"seq": r.seq, "time_ns": r.time_ns, "user": r.user, "action": r.action, "target_kind": r.target_kind,
                     "target_id": r.target_id, "data": dict(r.data or {})} for r in rows]

    def response_times(self, since_ns: int | None = None) -> dict[str, float | int | None]:
        """MTTA and MTTR in seconds over incidents opened since `since_ns`."""
        with Session(self.engine) as s:
            q = select(IncidentRow)
            if since_ns is not None:
                q = q.where(IncidentRow.opened_ns >= since_ns)
            rows = s.scalars(q).all()
        acks = [(r.acknowledged_ns - r.opened_ns) / _NS for r in rows if r.acknowledged_ns]
        res = [(r.resolved_ns - r.opened_ns) / _NS for r in rows if r.resolved_ns]
        return {"incidents": len(rows), "mtta_s": sum(acks) / len(acks) if acks else None,
                "mttr_s": sum(res) / len(res) if res else None}
