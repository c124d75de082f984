"""Alarm, incident, silence and outbox tables (SQLAlchemy 2), and row <-> dataclass mapping.

SQLite by default (`settings.database.url`, e.g. `sqlite:///var/dcops.sqlite`); PostgreSQL in
production: only portable types (BigInteger nanosecond times, JSON, String, Boolean). Tables
are created on first use (`open_engine`); schema migrations would go through alembic.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from sqlalchemy import JSON, BigInteger, Boolean, Index, Integer, String, Text, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from dcops.alarm_types import (Alarm, DeliveryStatus, EventType, Incident, IncidentAction, IncidentState,
                               MaintenanceWindow, Matcher, Notification, PerceivedSeverity, ProbableCause, Recurrence,
                               Silence, TimelineEntry, TimelineKind)

__all__ = ["Base", "AlarmRow", "IncidentRow", "TimelineRow", "SilenceRow", "OutboxRow", "OperatorActionRow", "open_engine",
           "alarm_to_row", "row_to_alarm", "incident_to_row", "row_to_incident", "row_to_entry",
           "silence_to_row", "row_to_silence", "row_to_notification"]


class Base(DeclarativeBase):
    pass


class AlarmRow(Base):
    __tablename__ = "alarms"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    component: Mapped[str] = mapped_column(String(200))
    managed_object: Mapped[str] = mapped_column(String(400))
    event_type: Mapped[str] = mapped_column(String(40))
    probable_cause: Mapped[str] = mapped_column(String(60))
    severity: Mapped[str] = mapped_column(String(20))
    specific_problem: Mapped[str] = mapped_column(Text, default="")
    additional_text: Mapped[str] = mapped_column(Text, default="")
    repair_actions: Mapped[list] = mapped_column(JSON, default=list)
    rule: Mapped[str] = mapped_column(String(400), default="")
    labels: Mapped[dict] = mapped_column(JSON, default=dict)
    root_cause: Mapped[bool] = mapped_column(Boolean, default=False)
    root_alarm_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    correlated: Mapped[list] = mapped_column(JSON, default=list)
    incident_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    raised_ns: Mapped[int] = mapped_column(BigInteger)
    changed_ns: Mapped[int] = mapped_column(BigInteger)
    cleared_ns: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    cleared_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    acknowledged_ns: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    suppressed_by: Mapped[list] = mapped_column(JSON, default=list)
    expected: Mapped[bool] = mapped_column(Boolean, default=False)
    flapping: Mapped[bool] = mapped_column(Boolean, default=False)
    count: Mapped[int] = mapped_column(Integer, default=1)
    listed: Mapped[bool] = mapped_column(Boolean, default=True, index=True)
    __table_args__ = (Index("ix_alarms_key", "component", "probable_cause"),)


class IncidentRow(Base):
    __tablename__ = "incidents"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    title: Mapped[str] = mapped_column(String(400))
    state: Mapped[str] = mapped_column(String(20), index=True)
    severity: Mapped[str] = mapped_column(String(20))
    opened_ns: Mapped[int] = mapped_column(BigInteger, index=True)
    updated_ns: Mapped[int] = mapped_column(BigInteger)
    root_alarm_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    root_component: Mapped[str | None] = mapped_column(String(200), nullable=True)
    opened_by: Mapped[str] = mapped_column(String(100), default="dcops")
    acknowledged_ns: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    resolved_ns: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    closed_ns: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    labels: Mapped[dict] = mapped_column(JSON, default=dict)


class TimelineRow(Base):
    __tablename__ = "incident_timeline"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(String(32), index=True)
    time_ns: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(30))
    text: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(100), default="dcops")
    alarm_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    notification_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    data: Mapped[dict] = mapped_column(JSON, default=dict)


class SilenceRow(Base):
    """Silences (`component` NULL) and maintenance windows (`component` set)."""

    __tablename__ = "silences"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # silence | maintenance
    matchers: Mapped[list] = mapped_column(JSON, default=list)
    component: Mapped[str | None] = mapped_column(String(200), nullable=True)
    starts_ns: Mapped[int] = mapped_column(BigInteger)
    ends_ns: Mapped[int] = mapped_column(BigInteger)
    author: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(Text)
    recurrence: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    created_ns: Mapped[int] = mapped_column(BigInteger, default=0)
    expired_ns: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class OutboxRow(Base):
    """The durable outbox: one row per notification, written before anything is sent."""

    __tablename__ = "outbox"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    receiver: Mapped[str] = mapped_column(String(100))
    notifier: Mapped[str] = mapped_column(String(40))
    action: Mapped[str] = mapped_column(String(20))
    incident_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    status: Mapped[str] = mapped_column(String(20), index=True)
    created_ns: Mapped[int] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_ns: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)
    delivered_ns: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    payload: Mapped[dict] = mapped_column(JSON, default=dict)


class OperatorActionRow(Base):
    """Append-only log of operator actions on alarms, incidents and silences (the audit trail
    of this stage); the alerter also reads it to apply acknowledgements to its state."""

    __tablename__ = "operator_actions"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    time_ns: Mapped[int] = mapped_column(BigInteger)
    user: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(40))
    target_kind: Mapped[str] = mapped_column(String(20))
    target_id: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict] = mapped_column(JSON, default=dict)


def open_engine(url: str, *, create_tables: bool = True) -> Engine:
    """Create the engine. SQLite gets WAL and a busy timeout so the alerter, the outbox sender and
    the console can share one file. `create_tables` makes missing tables with `create_all`, for
    scratch databases (tests, benchmarks); running services pass False: their schema is Alembic's
    (`dcops db upgrade`, `dcops.dbschema.prepare` at role start)."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, future=True, connect_args={"timeout": 30, "check_same_thread": False} if url.startswith("sqlite") else {})
    if url.startswith("sqlite"):
        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            if ":memory:" not in url:
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()
    for attempt in range(3 if create_tables else 0):  # two processes creating the schema at once: the loser retries
        try:
            Base.metadata.create_all(engine)
            break
        except OperationalError:
            if attempt == 2:
                raise
            time.sleep(0.2)
    return engine


def default_url() -> str:
    return os.environ.get("DCOPS_DATABASE_URL", "sqlite:///var/dcops.sqlite")


# ----- mapping -----------------------------------------------------------------------------

def alarm_to_row(a: Alarm, row: AlarmRow | None = None) -> AlarmRow:
    row = row or AlarmRow(id=a.id)
    row.component, row.managed_object = a.component, a.managed_object
    row.event_type, row.probable_cause, row.severity = a.event_type.value, a.probable_cause.value, a.severity.value
    row.specific_problem, row.additional_text = a.specific_problem, a.additional_text
    row.repair_actions, row.rule, row.labels = list(a.proposed_repair_actions), a.rule, dict(a.labels)
    row.root_cause, row.root_alarm_id, row.correlated = a.root_cause, a.root_alarm_id, list(a.correlated)
    row.incident_id, row.raised_ns, row.changed_ns = a.incident_id, a.raised_ns, a.changed_ns
    row.cleared_ns, row.cleared_by = a.cleared_ns, a.cleared_by
    row.acknowledged_ns, row.acknowledged_by = a.acknowledged_ns, a.acknowledged_by
    row.suppressed_by, row.expected, row.flapping, row.count = list(a.suppressed_by), a.expected, a.flapping, a.count
    row.listed = a.listed
    return row


def row_to_alarm(r: AlarmRow) -> Alarm:
    return Alarm(
        id=r.id, component=r.component, managed_object=r.managed_object, event_type=EventType(r.event_type),
        probable_cause=ProbableCause(r.probable_cause), severity=PerceivedSeverity(r.severity),
        specific_problem=r.specific_problem or "", raised_ns=int(r.raised_ns), changed_ns=int(r.changed_ns),
        proposed_repair_actions=tuple(r.repair_actions or ()), additional_text=r.additional_text or "", rule=r.rule or "",
        labels=dict(r.labels or {}), root_cause=bool(r.root_cause), root_alarm_id=r.root_alarm_id,
        correlated=tuple(r.correlated or ()), incident_id=r.incident_id, cleared_ns=r.cleared_ns, cleared_by=r.cleared_by,
        acknowledged_ns=r.acknowledged_ns, acknowledged_by=r.acknowledged_by, suppressed_by=tuple(r.suppressed_by or ()),
        expected=bool(r.expected), flapping=bool(r.flapping), count=int(r.count or 1),
    )


def incident_to_row(i: Incident, row: IncidentRow | None = None) -> IncidentRow:
    row = row or IncidentRow(id=i.id)
    row.title, row.state, row.severity = i.title, i.state.value, i.severity.value
    row.opened_ns, row.updated_ns = i.opened_ns, i.updated_ns
    row.root_alarm_id, row.root_component, row.opened_by = i.root_alarm_id, i.root_component, i.opened_by
    row.acknowledged_ns, row.acknowledged_by = i.acknowledged_ns, i.acknowledged_by
    row.resolved_ns, row.closed_ns, row.labels = i.resolved_ns, i.closed_ns, dict(i.labels)
    return row


def row_to_entry(r: TimelineRow) -> TimelineEntry:
    return TimelineEntry(time_ns=int(r.time_ns), kind=TimelineKind(r.kind), text=r.text, actor=r.actor,
                         alarm_id=r.alarm_id, notification_id=r.notification_id, data=dict(r.data or {}))


def row_to_incident(r: IncidentRow, alarm_ids=(), timeline=()) -> Incident:
    return Incident(
        id=r.id, title=r.title, state=IncidentState(r.state), severity=PerceivedSeverity(r.severity),
        opened_ns=int(r.opened_ns), updated_ns=int(r.updated_ns), root_alarm_id=r.root_alarm_id,
        root_component=r.root_component, alarm_ids=tuple(alarm_ids), opened_by=r.opened_by,
        acknowledged_ns=r.acknowledged_ns, acknowledged_by=r.acknowledged_by, resolved_ns=r.resolved_ns,
        closed_ns=r.closed_ns, labels=dict(r.labels or {}), timeline=tuple(timeline),
    )


def _rec_to_json(rec: Recurrence | None) -> dict | None:
    if rec is None:
        return None
    return {"weekdays": list(rec.weekdays), "start": rec.start, "duration_s": rec.duration_s, "timezone": rec.timezone}


def silence_to_row(s: Silence | MaintenanceWindow) -> SilenceRow:
    is_mw = isinstance(s, MaintenanceWindow)
    return SilenceRow(
        id=s.id, kind="maintenance" if is_mw else "silence",
        matchers=[] if is_mw else [[m.name, m.op, m.value] for m in s.matchers],
        component=s.component if is_mw else None, starts_ns=s.starts_ns, ends_ns=s.ends_ns, author=s.author,
        reason=s.reason, recurrence=_rec_to_json(s.recurrence), created_ns=s.created_ns, expired_ns=s.expired_ns,
    )


def row_to_silence(r: SilenceRow) -> Silence | MaintenanceWindow:
    rec = None
    if r.recurrence:
        rec = Recurrence(tuple(r.recurrence["weekdays"]), r.recurrence["start"], float(r.recurrence["duration_s"]),
                         r.recurrence.get("timezone", "UTC"))
    if r.kind == "maintenance":
        return MaintenanceWindow(id=r.id, component=r.component or "", starts_ns=int(r.starts_ns), ends_ns=int(r.ends_ns),
                                 author=r.author, reason=r.reason, recurrence=rec, created_ns=int(r.created_ns or 0),
                                 expired_ns=r.expired_ns)
    return Silence(id=r.id, matchers=tuple(Matcher(*m) for m in r.matchers or ()), starts_ns=int(r.starts_ns),
                   ends_ns=int(r.ends_ns), author=r.author, reason=r.reason, recurrence=rec,
                   created_ns=int(r.created_ns or 0), expired_ns=r.expired_ns)


def row_to_notification(r: OutboxRow) -> Notification:
    return Notification(
        id=r.id, idempotency_key=r.idempotency_key, receiver=r.receiver, notifier=r.notifier,
        action=IncidentAction(r.action), incident_id=r.incident_id, status=DeliveryStatus(r.status),
        created_ns=int(r.created_ns), attempts=int(r.attempts or 0), next_attempt_ns=r.next_attempt_ns,
        delivered_ns=r.delivered_ns, last_error=r.last_error or "", payload=dict(r.payload or {}),
    )
