"""The audit log is append-only: no API changes a record, the database refuses UPDATE and
DELETE, and tampering behind both (dropping the guard) is detected by the hash chain."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from dcops.alerts.storage.audit import AuditLog, AuditRecord

NS = 1_000_000_000


@pytest.fixture
def audit(db_url):
    eng = create_engine(db_url)
    log = AuditLog(eng, clock=iter(range(1_700_000_000 * NS, 1_800_000_000 * NS, NS)).__next__)
    log.ensure_schema()
    yield log
    eng.dispose()


def _fill(log: AuditLog, n: int = 5) -> list[AuditRecord]:
    return [log.append(actor=f"user{i % 2}", role="operator", action="incident.ack", target_kind="incident",
                       target_id=f"inc-{i}", data={"note": f"n{i}", "value": i * 1.5}) for i in range(n)]


def test_append_chains_and_verifies(audit):
    recs = _fill(audit)
    assert [r.seq for r in recs] == [1, 2, 3, 4, 5]
    assert all(b.prev_hash == a.hash for a, b in zip(recs, recs[1:]))
    assert audit.records() == recs
    assert audit.records(actor="user1", target_kind="incident")[0].target_id == "inc-1"
    v = audit.verify()
    assert v.ok and v.checked == 5
    with pytest.raises(ValueError, match="actor"):
        audit.append(actor="", role="operator", action="x", target_kind="x", target_id="x")


def test_no_api_changes_or_removes_records(audit):
    public = {n for n in dir(AuditLog) if not n.startswith("_")}
    assert public == {"append", "records", "verify", "ensure_schema"}
    rec = _fill(audit, 1)[0]
    with pytest.raises(Exception):
        rec.actor = "mallory"  # records are frozen


@pytest.mark.parametrize("sql", ["UPDATE audit_log SET actor = 'mallory' WHERE seq = 2",
                                 "DELETE FROM audit_log WHERE seq = 2",
                                 "DELETE FROM audit_log"])
def test_database_refuses_update_and_delete(audit, sql):
    _fill(audit, 3)
    with pytest.raises(DBAPIError, match="append-only"):
        with audit.engine.begin() as c:
            c.execute(text(sql))
    assert [r.actor for r in audit.records()] == ["user0", "user1", "user0"]
    assert audit.verify().ok


def test_truncate_refused_on_postgresql(audit):
    if audit.engine.dialect.name != "postgresql":
        pytest.skip("TRUNCATE is a PostgreSQL statement")
    _fill(audit, 2)
    with pytest.raises(DBAPIError, match="append-only"):
        with audit.engine.begin() as c:
            c.execute(text("TRUNCATE audit_log"))
    assert len(audit.records()) == 2


def _drop_guard(audit: AuditLog) -> None:
    with audit.engine.begin() as c:
        if audit.engine.dialect.name == "postgresql":
            c.execute(text("DROP TRIGGER audit_log_no_update ON audit_log"))
        else:
            c.execute(text("DROP TRIGGER audit_log_no_update"))
            c.execute(text("DROP TRIGGER audit_log_no_delete"))


@pytest.mark.parametrize("tamper, reason", [
    ("UPDATE audit_log SET actor = 'mallory' WHERE seq = 3", "record 3 was altered"),
    ("UPDATE audit_log SET data = '{\"note\": \"n2\", \"value\": 99.0}' WHERE seq = 3", "record 3 was altered"),
    ("DELETE FROM audit_log WHERE seq = 3", "record 3 is missing"),
])
def test_tampering_behind_the_guard_is_detected(audit, tamper, reason):
    _fill(audit, 5)
    _drop_guard(audit)  # someone with DDL rights removes the guard first
    with audit.engine.begin() as c:
        c.execute(text(tamper))
    v = audit.verify()
    assert not v.ok and v.first_bad_seq == 3 and reason in v.reason


def test_rewriting_a_record_and_its_hash_breaks_the_next_link(audit):
    recs = _fill(audit, 4)
    _drop_guard(audit)
    from dcops.alerts.storage.audit import record_hash
    r = recs[1]
    forged = record_hash(r.seq, r.time_ns, "mallory", r.role, r.action, r.target_kind, r.target_id, dict(r.data), r.prev_hash)
    with audit.engine.begin() as c:
        c.execute(text("UPDATE audit_log SET actor = 'mallory', hash = :h WHERE seq = 2"), {"h": forged})
    v = audit.verify()
    assert not v.ok and v.first_bad_seq == 3 and "does not link" in v.reason


def test_concurrent_appends_keep_one_chain(audit):
    def work(k):
        for i in range(10):
            audit.append(actor=f"t{k}", role="operator", action="note", target_kind="incident", target_id=str(i))
    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert audit.verify().checked == 40
    assert [r.seq for r in audit.records()] == list(range(1, 41))
