"""Runbook run tables (SQLAlchemy 2; SQLite and PostgreSQL, portable types only).

A run is attached to an incident and keeps a snapshot of the runbook it follows (so a later
edit of the YAML cannot change what an old run meant). What happened is an append-only list of
step events (who, when, what, output); the state of each step is derived from it.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["RunbookBase", "RunRow", "StepEventRow"]


class RunbookBase(DeclarativeBase):
    pass


class RunRow(RunbookBase):
    __tablename__ = "runbook_runs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    incident_id: Mapped[str] = mapped_column(String(32), index=True)
    runbook_id: Mapped[str] = mapped_column(String(64))
    runbook_version: Mapped[int] = mapped_column(Integer)
    runbook_digest: Mapped[str] = mapped_column(String(64))
    runbook: Mapped[dict] = mapped_column(JSON)
    root_component: Mapped[str] = mapped_column(String(200))
    variables: Mapped[dict] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(20), index=True)   # active | completed | aborted
    started_ns: Mapped[int] = mapped_column(BigInteger)
    started_by: Mapped[str] = mapped_column(String(100))
    ended_ns: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    ended_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    silence_ids: Mapped[list] = mapped_column(JSON, default=list)


class StepEventRow(RunbookBase):
    __tablename__ = "runbook_step_events"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(32), index=True)
    step_id: Mapped[str] = mapped_column(String(64))   # "" for run-level events (started, signed off, ...)
    kind: Mapped[str] = mapped_column(String(30))
    time_ns: Mapped[int] = mapped_column(BigInteger)
    user: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(20))
    note: Mapped[str] = mapped_column(Text, default="")
    output: Mapped[dict] = mapped_column(JSON, default=dict)
