"""The alerter's writes: one transaction per processing cycle, plus the outbox queue.

Delivery semantics (kept here, next to the code that keeps them):
- A cycle's alarm changes, incident changes, timeline entries and outbox rows are written in
  ONE transaction; the bus offsets are committed only after it. A crash before the commit
  replays the messages; a crash after it has nothing left to do.
- Outbox rows are unique by idempotency key: planning the same notification twice (a replay)
  inserts it once.
- Operator-owned columns (acknowledgement of alarms, operator state changes of incidents)
  are never overwritten here: the console writes them through `Repository`, and the alerter
  learns them from `operator_actions`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from dcops.alerts.storage.tables import (AlarmRow, IncidentRow, OperatorActionRow, OutboxRow, SilenceRow, TimelineRow, alarm_to_row,
                       incident_to_row, row_to_alarm, row_to_incident, row_to_notification, row_to_silence)
from dcops.alarm_types import (Alarm, DeliveryStatus, Incident, IncidentState, MaintenanceWindow, Notification, Silence,
                               TimelineEntry)

__all__ = ["CycleWrite", "AlerterStore"]

_OPEN_STATES = (IncidentState.OPEN.value, IncidentState.ACKNOWLEDGED.value, IncidentState.MITIGATING.value)


@dataclass
class CycleWrite:
    alarms: dict[str, Alarm] = field(default_factory=dict)
    new_incidents: dict[str, Incident] = field(default_factory=dict)
    incidents: dict[str, Incident] = field(default_factory=dict)      # updates of alerter-owned fields
    resolved: dict[str, int] = field(default_factory=dict)            # incident id -> time
    reopened: dict[str, int] = field(default_factory=dict)
    timeline: list[tuple[str, TimelineEntry]] = field(default_factory=list)
    notifications: list[Notification] = field(default_factory=list)

    def merge(self, later: "CycleWrite") -> "CycleWrite":
        """Fold a later cycle into this one (several reconciles, one transaction)."""
        self.alarms.update(later.alarms)
        for iid, inc in later.new_incidents.items():
            self.new_incidents[iid] = inc
        for iid, inc in later.incidents.items():
            (self.new_incidents if iid in self.new_incidents else self.incidents)[iid] = inc
        for iid, t in later.reopened.items():
            self.resolved.pop(iid, None)
            self.reopened[iid] = t
        for iid, t in later.resolved.items():
            self.reopened.pop(iid, None)
            self.resolved[iid] = t
        self.timeline.extend(later.timeline)
        self.notifications.extend(later.notifications)
        return self

    def __bool__(self) -> bool:
        return bool(self.alarms or self.new_incidents or self.incidents or self.resolved or self.reopened
                    or self.timeline or self.notifications)


def _chunks(seq: Sequence, n: int = 500):
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


class AlerterStore:
    def __init__(self, engine: Engine, audit=None) -> None:
        """`audit`: an `AuditLog`; every cycle that changed state is appended to it (see `_audit`)."""
        self.engine = engine
        self.audit = audit

    # ----- loading -------------------------------------------------------------------------
    def listed_alarms(self) -> list[Alarm]:
        with Session(self.engine) as s:
            return [row_to_alarm(r) for r in s.scalars(select(AlarmRow).where(AlarmRow.listed.is_(True)))]

    def incidents_in(self, states: Iterable[str]) -> list[Incident]:
        with Session(self.engine) as s:
            return [row_to_incident(r) for r in s.scalars(select(IncidentRow).where(IncidentRow.state.in_(list(states))))]

    def incident(self, incident_id: str) -> Incident | None:
        with Session(self.engine) as s:
            r = s.get(IncidentRow, incident_id)
            return row_to_incident(r) if r else None

    def suppressions(self, now_ns: int) -> tuple[list[Silence], list[MaintenanceWindow]]:
        with Session(self.engine) as s:
            rows = s.scalars(select(SilenceRow).where(SilenceRow.ends_ns > now_ns)).all()
        items = [row_to_silence(r) for r in rows]
        return [i for i in items if isinstance(i, Silence)], [i for i in items if isinstance(i, MaintenanceWindow)]

    def operator_actions(self, after_seq: int) -> list[OperatorActionRow]:
        with Session(self.engine, expire_on_commit=False) as s:
            rows = s.scalars(select(OperatorActionRow).where(OperatorActionRow.seq > after_seq).order_by(OperatorActionRow.seq)).all()
            s.expunge_all()
            return list(rows)

    def last_action_seq(self) -> int:
        with Session(self.engine) as s:
            r = s.scalars(select(OperatorActionRow.seq).order_by(OperatorActionRow.seq.desc()).limit(1)).first()
            return int(r or 0)

    def receivers_triggered(self, incident_id: str) -> list[str]:
        with Session(self.engine) as s:
            rows = s.execute(select(OutboxRow.receiver).where(OutboxRow.incident_id == incident_id,
                                                              OutboxRow.action == "trigger",
                                                              OutboxRow.status != DeliveryStatus.SUPPRESSED.value)).all()
        return sorted({r[0] for r in rows})

    # ----- the cycle transaction -----------------------------------------------------------
    def write(self, w: CycleWrite, wall_ns: int | None = None) -> None:
        """Write a cycle in one transaction. New outbox rows are due at `wall_ns` (the sender runs
        on the wall clock; notification times may be data time, e.g. in a simulation)."""
        if not w:
            return
        with Session(self.engine) as s, s.begin():
            self._write_alarms(s, list(w.alarms.values()))
            for inc in w.new_incidents.values():
                if s.get(IncidentRow, inc.id) is None:
                    s.add(incident_to_row(inc))
            s.flush()
            for inc in w.incidents.values():
                if inc.id in w.new_incidents:
                    continue
                s.execute(update(IncidentRow).where(IncidentRow.id == inc.id).values(
                    title=inc.title, severity=inc.severity.value, updated_ns=inc.updated_ns, root_alarm_id=inc.root_alarm_id,
                    root_component=inc.root_component, labels=dict(inc.labels)))
            for iid, t in w.resolved.items():
                s.execute(update(IncidentRow).where(IncidentRow.id == iid, IncidentRow.state.in_(_OPEN_STATES))
                          .values(state=IncidentState.RESOLVED.value, resolved_ns=t, updated_ns=t))
            for iid, t in w.reopened.items():
                s.execute(update(IncidentRow).where(IncidentRow.id == iid, IncidentRow.state == IncidentState.RESOLVED.value)
                          .values(state=IncidentState.OPEN.value, resolved_ns=None, updated_ns=t))
            for iid, e in w.timeline:
                s.add(TimelineRow(incident_id=iid, time_ns=e.time_ns, kind=e.kind.value, text=e.text, actor=e.actor,
                                  alarm_id=e.alarm_id, notification_id=e.notification_id, data=dict(e.data)))
            self._insert_notifications(s, w.notifications, wall_ns)
        self._audit(w)

    def _audit(self, w: CycleWrite) -> None:
        """One audit record per written cycle: which alarms, incidents and notifications changed.

        Appended right after the cycle's own transaction (its own retries against concurrent
        writers such as the console); a failure is logged, never lost silently.
        """
        if self.audit is None:
            return
        cap = 500
        data = {"alarms": sorted(w.alarms)[:cap], "alarms_changed": len(w.alarms),
                "incidents_opened": sorted(w.new_incidents)[:cap], "incidents_updated": sorted(w.incidents)[:cap],
                "incidents_resolved": sorted(w.resolved)[:cap], "incidents_reopened": sorted(w.reopened)[:cap],
                "notifications": len(w.notifications), "timeline_entries": len(w.timeline)}
        try:
            self.audit.append(actor="alerter", role="system", action="alerter.cycle", target_kind="alerter",
                              target_id="cycle", data=data)
        except Exception:
            import logging

            logging.getLogger(__name__).exception("could not append the alerter cycle to the audit trail")

    @staticmethod
    def _write_alarms(s: Session, alarms: list[Alarm]) -> None:
        for chunk in _chunks(alarms):
            existing = {r.id: r for r in s.scalars(select(AlarmRow).where(AlarmRow.id.in_([a.id for a in chunk])))}
            for a in chunk:
                row = existing.get(a.id)
                if row is None:
                    s.add(alarm_to_row(a))
                    continue
                ack_ns, ack_by = row.acknowledged_ns, row.acknowledged_by  # operator-owned: keep
                alarm_to_row(a, row)
                if ack_ns is not None:
                    row.acknowledged_ns, row.acknowledged_by = ack_ns, ack_by
                row.listed = a.cleared_ns is None or row.acknowledged_ns is None

    @staticmethod
    def _insert_notifications(s: Session, notes: Sequence[Notification], wall_ns: int | None) -> None:
        if not notes:
            return
        keys = [n.idempotency_key for n in notes]
        have = set()
        for chunk in _chunks(keys):
            have |= set(s.scalars(select(OutboxRow.idempotency_key).where(OutboxRow.idempotency_key.in_(chunk))))
        for n in notes:
            if n.idempotency_key in have:
                continue
            have.add(n.idempotency_key)
            s.add(OutboxRow(id=n.id, idempotency_key=n.idempotency_key, receiver=n.receiver, notifier=n.notifier,
                            action=n.action.value, incident_id=n.incident_id, status=n.status.value, created_ns=n.created_ns,
                            attempts=0, next_attempt_ns=(wall_ns or n.created_ns) if n.status is DeliveryStatus.PENDING else None,
                            last_error=n.last_error, payload=dict(n.payload)))

    # ----- outbox queue --------------------------------------------------------------------
    def due(self, now_ns: int, limit: int = 50) -> list[Notification]:
        with Session(self.engine) as s:
            rows = s.scalars(select(OutboxRow).where(OutboxRow.status == DeliveryStatus.PENDING.value,
                                                     OutboxRow.next_attempt_ns <= now_ns)
                             .order_by(OutboxRow.next_attempt_ns, OutboxRow.created_ns).limit(limit)).all()
            return [row_to_notification(r) for r in rows]

    def pending_count(self) -> int:
        with Session(self.engine) as s:
            return int(s.scalar(select(func.count()).select_from(OutboxRow)
                                .where(OutboxRow.status == DeliveryStatus.PENDING.value)) or 0)

    def record_attempt(self, note_id: str, *, delivered: bool, now_ns: int, error: str = "",
                       next_attempt_ns: int | None = None, give_up: bool = False) -> None:
        with Session(self.engine) as s, s.begin():
            row = s.get(OutboxRow, note_id)
            if row is None or row.status != DeliveryStatus.PENDING.value:
                return
            row.attempts = (row.attempts or 0) + 1
            if delivered:
                row.status, row.delivered_ns, row.next_attempt_ns, row.last_error = DeliveryStatus.DELIVERED.value, now_ns, None, ""
            elif give_up:
                row.status, row.next_attempt_ns, row.last_error = DeliveryStatus.FAILED.value, None, error
            else:
                row.next_attempt_ns, row.last_error = next_attempt_ns, error
            if row.incident_id and (delivered or give_up):
                what = "delivered" if delivered else f"failed for good after {row.attempts} attempt(s): {error}"
                s.add(TimelineRow(incident_id=row.incident_id, time_ns=now_ns, kind="notification",
                                  text=f"{row.action} to {row.receiver} {what}", actor="dcops", notification_id=row.id,
                                  data={"status": row.status, "attempts": row.attempts}))
