"""The append-only audit log of every state change (who did what, when, to which target).

Four layers keep it honest:
1. The API has no update or delete: `AuditLog` appends, reads and verifies, nothing else.
2. Rows are chained: each row stores a MAC of its own canonical content including the previous
   row's MAC, and sequence numbers are consecutive (the primary key is the previous seq + 1, so
   two concurrent writers cannot fork the chain: one gets a conflict and retries). With a key
   (`settings.database.audit_key`, e.g. `env:DCOPS_AUDIT_KEY`; the database never holds it) the
   MAC is HMAC-SHA256 and the row names the key's id (`mac`), so someone who can write the
   table (its owner can drop the triggers) cannot forge or re-hash rows: `verify(key)` names the
   first row that does not fit. Without a key it is plain SHA-256 (detects accidents only).
3. Anchors: `anchor()` writes the chain head (seq, MAC, time) outside the database, to the log
   (`dcops.audit` logger) and appended to an anchor file (`settings.database.audit_anchor_file`),
   every `audit_anchor_interval_s` from each long-running process (`AnchorKeeper`). `verify`
   with the anchors detects a deleted tail or an emptied table (an anchored record is gone) and
   a replaced chain (an anchored MAC differs), even without the key. Records written after the
   latest anchor can be cut without trace: the interval bounds that window.
4. The database refuses UPDATE and DELETE on the table (and on `operator_actions`): SQLite
   triggers raising ABORT, PostgreSQL trigger functions plus TRUNCATE triggers, installed with
   the table (`after_create` hooks and the Alembic migrations).

`dcops audit verify` runs the check from the command line. Times are int nanoseconds (UTC),
the clock is injected.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from sqlalchemy import JSON, BigInteger, DDL, String, event, inspect, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

__all__ = ["AnchorKeeper", "anchor_file_for", "AuditBase", "AuditRow", "AuditRecord", "AuditVerification", "AuditLog", "GENESIS",
           "GUARD_SQL", "OPERATOR_ACTIONS_GUARD_SQL", "key_id", "open_audit_log", "read_anchors", "record_hash"]

GENESIS = "0" * 64
log = logging.getLogger("dcops.audit")


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
    mac: Mapped[str | None] = mapped_column(String(40), nullable=True)  # "hmac-sha256:<key id>"; None: SHA-256


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

# operator_actions (alerts.storage.tables) is append-only too; its guard goes in with the audit
# revision of the migrations and with `AuditLog.ensure_schema`.
OPERATOR_ACTIONS_GUARD_SQL: Mapping[str, tuple[str, ...]] = {
    "sqlite": (
        "CREATE TRIGGER IF NOT EXISTS operator_actions_no_update BEFORE UPDATE ON operator_actions "
        "BEGIN SELECT RAISE(ABORT, 'operator_actions is append-only: UPDATE refused'); END",
        "CREATE TRIGGER IF NOT EXISTS operator_actions_no_delete BEFORE DELETE ON operator_actions "
        "BEGIN SELECT RAISE(ABORT, 'operator_actions is append-only: DELETE refused'); END",
    ),
    "postgresql": (
        "CREATE OR REPLACE FUNCTION dcops_operator_actions_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN RAISE EXCEPTION USING MESSAGE = 'operator_actions is append-only: ' || TG_OP || ' refused'; END $$",
        "DROP TRIGGER IF EXISTS operator_actions_no_update ON operator_actions",
        "CREATE TRIGGER operator_actions_no_update BEFORE UPDATE OR DELETE ON operator_actions "
        "FOR EACH ROW EXECUTE FUNCTION dcops_operator_actions_append_only()",
        "DROP TRIGGER IF EXISTS operator_actions_no_truncate ON operator_actions",
        "CREATE TRIGGER operator_actions_no_truncate BEFORE TRUNCATE ON operator_actions "
        "FOR EACH STATEMENT EXECUTE FUNCTION dcops_operator_actions_append_only()",
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
    keyed: bool = False  # every record carried this key's HMAC
    anchors_checked: int = 0


def read_anchors(path: str | Path) -> list[dict]:
    """The anchors written to `path` (JSON lines of seq, hash, time_ns); unreadable lines are skipped."""
    out = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return out
    for line in lines:
        try:
            a = json.loads(line)
            out.append({"seq": int(a["seq"]), "hash": str(a["hash"]), "time_ns": int(a.get("time_ns", 0))})
        except (ValueError, KeyError, TypeError):
            continue
    return out


def _canonical_data(data: Mapping | None) -> dict:
    """What the database will give back (JSON round trip), so hashes verify after reading."""
    return json.loads(json.dumps(dict(data or {}), sort_keys=True, default=str))


def key_id(key: bytes) -> str:
    """A short public name of a key (so a row says which key made it, never the key)."""
    return hashlib.sha256(b"dcops-audit-key-id:" + key).hexdigest()[:16]


def _mac_name(key: bytes | None) -> str | None:
    return None if key is None else f"hmac-sha256:{key_id(key)}"


def record_hash(seq: int, time_ns: int, actor: str, role: str, action: str, target_kind: str, target_id: str,
                data: Mapping, prev_hash: str, key: bytes | None = None) -> str:
    body = json.dumps([seq, time_ns, actor, role, action, target_kind, target_id, data, prev_hash],
                      sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    if key is not None:
        return hmac.new(key, body, hashlib.sha256).hexdigest()
    return hashlib.sha256(body).hexdigest()


def _record(r: AuditRow) -> AuditRecord:
    return AuditRecord(int(r.seq), int(r.time_ns), r.actor, r.role, r.action, r.target_kind, r.target_id,
                       dict(r.data or {}), r.prev_hash, r.hash)


class AuditLog:
    """Append, read and verify; there is deliberately no way to change or remove a record."""

    def __init__(self, engine: Engine, clock: Callable[[], int] = time.time_ns, *, key: bytes | None = None,
                 anchor_file: str | Path | None = None) -> None:
        self.engine = engine
        # SQLite has no row lock to take before reading the chain's head: writers of this process
        # take turns here (other processes still meet the unique seq and retry)
        self._local_writer = threading.Lock()
        self.clock = clock
        self.key = key
        self.anchor_file = Path(anchor_file) if anchor_file else None
        self._anchor_lock = threading.Lock()

    def ensure_schema(self) -> None:
        """Create the table and the guards when missing (the Alembic migrations do the same)."""
        AuditBase.metadata.create_all(self.engine)
        insp = inspect(self.engine)
        with self.engine.begin() as con:
            if "mac" not in {c["name"] for c in insp.get_columns("audit_log")}:  # created before the keyed chain
                con.execute(text("ALTER TABLE audit_log ADD COLUMN mac VARCHAR(40)"))
            if insp.has_table("operator_actions"):
                for sql in OPERATOR_ACTIONS_GUARD_SQL.get(self.engine.dialect.name, ()):
                    con.execute(text(sql))

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
                with self._local_writer, Session(self.engine) as s, s.begin():
                    return self._append(s, t, actor, role, action, target_kind, target_id, data)
            except IntegrityError:
                if attempt == retries - 1:
                    raise
                time.sleep(0.005 * 2 ** attempt)  # another process took this seq: read the new head
        raise AssertionError("unreachable")

    def _append(self, s: Session, t: int, actor, role, action, target_kind, target_id, data) -> AuditRecord:
        if s.get_bind().dialect.name == "postgresql":
            s.execute(text("LOCK TABLE audit_log IN SHARE ROW EXCLUSIVE MODE"))
        last = s.execute(select(AuditRow.seq, AuditRow.hash).order_by(AuditRow.seq.desc()).limit(1)).first()
        seq, prev = (int(last[0]) + 1, last[1]) if last else (1, GENESIS)
        d = _canonical_data(data)
        h = record_hash(seq, t, actor, role, action, target_kind, str(target_id), d, prev, self.key)
        s.add(AuditRow(seq=seq, time_ns=t, actor=actor, role=role, action=action, target_kind=target_kind,
                       target_id=str(target_id), data=d, prev_hash=prev, hash=h, mac=_mac_name(self.key)))
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

    def head(self) -> tuple[int, str]:
        """(seq, MAC) of the newest record; (0, GENESIS) for an empty log."""
        with Session(self.engine) as s:
            last = s.execute(select(AuditRow.seq, AuditRow.hash).order_by(AuditRow.seq.desc()).limit(1)).first()
        return (int(last[0]), last[1]) if last else (0, GENESIS)

    def anchor(self, source: str = "") -> dict:
        """Write the chain head outside the database: to the log, and appended to the anchor file."""
        seq, h = self.head()
        a = {"seq": seq, "hash": h, "time_ns": int(self.clock()), "source": source}
        log.info("audit anchor: seq=%d head=%s source=%s", seq, h, source or "-")
        if self.anchor_file is not None:
            with self._anchor_lock:
                self.anchor_file.parent.mkdir(parents=True, exist_ok=True)
                with open(self.anchor_file, "a", encoding="utf-8") as f:
                    f.write(json.dumps(a, sort_keys=True) + "\n")
                    f.flush()
                    os.fsync(f.fileno())
        return a

    def verify(self, batch: int = 5000, *, key: bytes | None = None, anchors: list[dict] | None = None,
               require_key: bool | None = None) -> AuditVerification:
        """Walk the whole chain; the first row whose seq, link or MAC does not fit is named.

        `key` defaults to this log's key; with a key every record must carry its HMAC (a record
        without one, or made with another key, is reported: someone re-hashed it without the key).
        `anchors` (see `read_anchors`) must each match the chain: a missing anchored record means
        a deleted tail or an emptied table, a different MAC a replaced chain.
        """
        key = self.key if key is None else key
        require_key = key is not None if require_key is None else require_key
        want_mac = _mac_name(key)
        by_seq = {}
        for a in anchors or ():
            by_seq.setdefault(a["seq"], a)
        prev, expect, n = GENESIS, 1, 0
        with Session(self.engine) as s:
            while True:
                rows = s.scalars(select(AuditRow).where(AuditRow.seq >= expect).order_by(AuditRow.seq).limit(batch)).all()
                if not rows:
                    break
                for r in rows:
                    if int(r.seq) != expect:
                        return AuditVerification(False, n, expect, f"record {expect} is missing (next is {r.seq})")
                    if r.prev_hash != prev:
                        return AuditVerification(False, n, expect, f"record {expect} does not link to record {expect - 1}")
                    if require_key and r.mac != want_mac:
                        what = "has no HMAC" if r.mac is None else f"was made with another key ({r.mac})"
                        return AuditVerification(False, n, expect, f"record {expect} {what}: re-hashed or written"
                                                                   " without the audit key")
                    use = key if r.mac is not None and r.mac == want_mac else None
                    if r.mac is not None and use is None:
                        return AuditVerification(False, n, expect, f"record {expect} is keyed ({r.mac}); verify it"
                                                                   " with the audit key")
                    h = record_hash(int(r.seq), int(r.time_ns), r.actor, r.role, r.action, r.target_kind, r.target_id,
                                    _canonical_data(r.data), r.prev_hash, use)
                    if not hmac.compare_digest(h, r.hash):
                        return AuditVerification(False, n, expect, f"record {expect} was altered (MAC mismatch)")
                    a = by_seq.get(expect)
                    if a is not None and a["hash"] != r.hash:
                        return AuditVerification(False, n, expect, f"record {expect} differs from its anchor"
                                                                   " (the chain was replaced or re-hashed)")
                    prev, expect, n = r.hash, expect + 1, n + 1
        beyond = [a for a in by_seq.values() if a["seq"] >= expect]
        if beyond:
            a = max(beyond, key=lambda a: a["seq"])
            return AuditVerification(False, n, expect, f"the chain ends at record {expect - 1} but an anchor saw"
                                                       f" record {a['seq']}: records were deleted from the tail"
                                                       " (or the table was emptied)", anchors_checked=len(by_seq))
        return AuditVerification(True, n, keyed=require_key and n > 0, anchors_checked=len(by_seq))


def anchor_file_for(db_settings=None, url: str | None = None) -> str:
    """Where a database's anchors go: the configured file, `DCOPS_AUDIT_ANCHORS`, beside a SQLite
    file (`<db>.audit-anchors.jsonl`), else `var/audit-anchors.jsonl`."""
    configured = getattr(db_settings, "audit_anchor_file", None) or os.environ.get("DCOPS_AUDIT_ANCHORS")
    if configured:
        return str(configured)
    url = url or getattr(db_settings, "url", None) or ""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:") and len(url) > len("sqlite:///"):
        return url[len("sqlite:///"):] + ".audit-anchors.jsonl"
    return "var/audit-anchors.jsonl"


def open_audit_log(engine: Engine, db_settings=None, clock: Callable[[], int] = time.time_ns, *,
                   ensure_schema: bool = True) -> AuditLog:
    """The audit log of a process, keyed and anchored as `settings.database` says. Running services
    pass `ensure_schema=False`: Alembic made the table and its guards.

    The key comes from `db_settings.audit_key` (or `DCOPS_AUDIT_KEY` in the environment); without
    one a warning says that the chain is not tamper-evident against a database editor.
    """
    secret = getattr(db_settings, "audit_key", None)
    raw = secret.get_secret_value() if secret is not None else os.environ.get("DCOPS_AUDIT_KEY")
    key = raw.encode("utf-8") if raw else None
    if key is None:
        log.warning("no audit key (settings.database.audit_key / DCOPS_AUDIT_KEY): the audit chain is plain"
                    " SHA-256; only its anchors detect an edit by someone who can write the database")
    anchor_file = anchor_file_for(db_settings, engine.url.render_as_string(hide_password=False))
    audit = AuditLog(engine, clock, key=key, anchor_file=anchor_file)
    if ensure_schema:
        audit.ensure_schema()
    return audit


class AnchorKeeper:
    """Anchors the chain head every `interval_s` (and once at start and stop) in a daemon thread."""

    def __init__(self, audit: AuditLog, interval_s: float = 300.0, source: str = "") -> None:
        self.audit, self.interval_s, self.source = audit, interval_s, source
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audit-anchor", daemon=True)

    def start(self) -> "AnchorKeeper":
        self._thread.start()
        return self

    def _run(self) -> None:
        last = None
        while True:
            try:
                if self.audit.head() != last:  # an unchanged head needs no new anchor
                    last = (a := self.audit.anchor(self.source)) and (a["seq"], a["hash"])
            except Exception:  # the anchors must keep going; the next round retries
                log.exception("audit anchor failed")
            if self._stop.wait(self.interval_s):
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        try:
            self.audit.anchor(self.source)
        except Exception:
            log.exception("final audit anchor failed")
