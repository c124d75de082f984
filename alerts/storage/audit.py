"""The append-only audit log of operator actions (who did what, when, to which target).

Three layers keep it honest:
1. The API has no update or delete: `AuditLog` appends, reads and verifies, nothing else.
2. Rows are hash-chained: each row stores the SHA-256 of its own canonical content including
   the previous row's hash, and sequence numbers are consecutive (the primary key is the
   previous seq + 1, so two concurrent writers cannot fork the chain: one gets a conflict and
   retries). `verify()` walks the chain and names the first row that does not fit, so an edit,
   a deletion or a reordering made behind the API's back is detected.
3. The database refuses UPDATE and DELETE on the table: SQLite triggers raising ABORT, and a
   PostgreSQL trigger function (plus a TRUNCATE trigger). They are installed with the table
   (`create_all` through the `after_create` hook, and the Alembic migration).

Times are int nanoseconds (UTC), the clock is injected.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping

from sqlalchemy import JSON, BigInteger, DDL, String, event, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

__all__ = ["AuditBase", "AuditRow", "AuditRecord", "AuditVerification", "AuditLog", "GENESIS", "GUARD_SQL",
           "record_hash"]

GENESIS = "0" * 64


class AuditBase(DeclarativeBase):
    pass


class AuditRow(AuditBase):
    __tablename__ = "audit_log"
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    time_ns: Mapped[int] = mapped_column(BigInteger, index=True)
    actor: Mapped[str] = mapped_column(String(100), index=True)
    role: Mapped[str] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(60))
    target_kind: Mapped[str] = mapped_column(String(30))
    target_id: Mapped[str] = mapped_column(String(64), index=True)
    data: Mapped[dict] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


GUARD_SQL: Mapping[str, tuple[str, ...]] = {
    "sqlite": (
        "CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log "
        "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: UPDATE refused'); END",
        "CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log "
        "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: DELETE refused'); END",
    ),
    "postgresql": (
        "CREATE OR REPLACE FUNCTION dcops_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN RAISE EXCEPTION USING MESSAGE = 'audit_log is append-only: ' || TG_OP || ' refused'; END $$",
        "CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log "
        "FOR EACH ROW EXECUTE FUNCTION dcops_audit_append_only()",
        "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
        "FOR EACH STATEMENT EXECUTE FUNCTION dcops_audit_append_only()",
    ),
}

for _dialect, _stmts in GUARD_SQL.items():
    for _sql in _stmts:
        event.listen(AuditRow.__table__, "after_create", DDL(_sql).execute_if(dialect=_dialect))


@dataclass(frozen=True)
class AuditRecord:
    seq: int
    time_ns: int
    actor: str
    role: str
    action: str
    target_kind: str
    target_id: str
    data: Mapping[str, object] = field(default_factory=dict)
    prev_hash: str = GENESIS
    hash: str = ""


@dataclass(frozen=True)
class AuditVerification:
    ok: bool
    checked: int
    first_bad_seq: int | None = None
    reason: str = ""


def _canonical_data(data: Mapping | None) -> dict:
    """What the database will give back (JSON round trip), so hashes verify after reading."""
    return json.loads(json.dumps(dict(data or {}), sort_keys=True, default=str))


def record_hash(seq: int, time_ns: int, actor: str, role: str, action: str, target_kind: str, target_id: str,
                data: Mapping, prev_hash: str) -> str:
    body = json.dumps([seq, time_ns, actor, role, action, target_kind, target_id, data, prev_hash],
                      sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def _record(r: AuditRow) -> AuditRecord:
    return AuditRecord(int(r.seq), int(r.time_ns), r.actor, r.role, r.action, r.target_kind, r.target_id,
                       dict(r.data or {}), r.prev_hash, r.hash)


class AuditLog:
    """Append, read and verify; there is deliberately no way to change or remove a record."""

    def __init__(self, engine: Engine, clock: Callable[[], int] = time.time_ns) -> None:
        self.engine = engine
        self.clock = clock

    def ensure_schema(self) -> None:
        """Create the table and its guard when missing (the Alembic migration does the same)."""
        AuditBase.metadata.create_all(self.engine)

    def append(self, *, actor: str, role: str, action: str, target_kind: str, target_id: str,
               data: Mapping | None = None, session: Session | None = None, time_ns: int | None = None,
               retries: int = 5) -> AuditRecord:
        """Append one record. With `session`, inside the caller's transaction (the caller then
        retries on `IntegrityError`); without, in a transaction of its own, retried on a
        concurrent writer's conflict."""
        if not actor:
            raise ValueError("an audit record needs an actor")
        t = self.clock() if time_ns is None else int(time_ns)
        if session is not None:
            return self._append(session, t, actor, role, action, target_kind, target_id, data)
        for attempt in range(retries):
            try:
                with Session(self.engine) as s, s.begin():
                    return self._append(s, t, actor, role, action, target_kind, target_id, data)
            except IntegrityError:
                if attempt == retries - 1:
                    raise
        raise AssertionError("unreachable")

    def _append(self, s: Session, t: int, actor, role, action, target_kind, target_id, data) -> AuditRecord:
        if s.get_bind().dialect.name == "postgresql":
            s.execute(text("LOCK TABLE audit_log IN SHARE ROW EXCLUSIVE MODE"))
        last = s.execute(select(AuditRow.seq, AuditRow.hash).order_by(AuditRow.seq.desc()).limit(1)).first()
        seq, prev = (int(last[0]) + 1, last[1]) if last else (1, GENESIS)
        d = _canonical_data(data)
        h = record_hash(seq, t, actor, role, action, target_kind, str(target_id), d, prev)
        s.add(AuditRow(seq=seq, time_ns=t, actor=actor, role=role, action=action, target_kind=target_kind,
                       target_id=str(target_id), data=d, prev_hash=prev, hash=h))
        s.flush()
        return AuditRecord(seq, t, actor, role, action, target_kind, str(target_id), d, prev, h)

    def records(self, *, target_kind: str | None = None, target_id: str | None = None, actor: str | None = None,
                after_seq: int = 0, limit: int = 1000) -> list[AuditRecord]:
        q = select(AuditRow).where(AuditRow.seq > after_seq)
        if target_kind is not None:
            q = q.where(AuditRow.target_kind == target_kind)
        if target_id is not None:
            q = q.where(AuditRow.target_id == str(target_id))
        if actor is not None:
            q = q.where(AuditRow.actor == actor)
        with Session(self.engine) as s:
            return [_record(r) for r in s.scalars(q.order_by(AuditRow.seq).limit(limit))]

    def verify(self, batch: int = 5000) -> AuditVerification:
        """Walk the whole chain; the first row whose seq, link or hash does not fit is named."""
        prev, expect, n = GENESIS, 1, 0
        with Session(self.engine) as s:
            while True:
                rows = s.scalars(select(AuditRow).where(AuditRow.seq >= expect).order_by(AuditRow.seq).limit(batch)).all()
                if not rows:
                    return AuditVerification(True, n)
                for r in rows:
                    if int(r.seq) != expect:
                        return AuditVerification(False, n, expect, f"record {expect} is missing (next is {r.seq})")
                    if r.prev_hash != prev:
                        return AuditVerification(False, n, expect, f"record {expect} does not link to record {expect - 1}")
                    h = record_hash(int(r.seq), int(r.time_ns), r.actor, r.role, r.action, r.target_kind, r.target_id,
                                    _canonical_data(r.data), r.prev_hash)
                    if h != r.hash:
                        return AuditVerification(False, n, expect, f"record {expect} was altered (hash mismatch)")
                    prev, expect, n = r.hash, expect + 1, n + 1
