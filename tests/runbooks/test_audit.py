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
    assert public == {"append", "records", "verify", "ensure_schema", "head", "anchor"}
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
        pytest.skip("by design: TRUNCATE is a PostgreSQL statement")
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


# ----- keyed chain and anchors against a privileged editor (issue 20, failure 5) -------------------
KEY = b"k3y-the-database-never-sees"


@pytest.fixture
def keyed(db_url, tmp_path):
    eng = create_engine(db_url)
    log = AuditLog(eng, clock=iter(range(1_700_000_000 * NS, 1_800_000_000 * NS, NS)).__next__, key=KEY,
                   anchor_file=tmp_path / "anchors.jsonl")
    log.ensure_schema()
    yield log
    eng.dispose()


def _rehash_all(log: AuditLog, edit_seq: int | None = None, upto: int | None = None) -> None:
    """What a privileged editor without the key can do: edit a row and recompute every SHA-256 link."""
    from dcops.alerts.storage.audit import GENESIS, record_hash

    rows = log.records(limit=10_000)
    prev = GENESIS
    with log.engine.begin() as c:
        for r in rows[:upto]:
            actor = "mallory" if r.seq == edit_seq else r.actor
            h = record_hash(r.seq, r.time_ns, actor, r.role, r.action, r.target_kind, r.target_id, dict(r.data), prev)
            c.execute(text("UPDATE audit_log SET actor = :a, prev_hash = :p, hash = :h, mac = NULL WHERE seq = :s"),
                      {"a": actor, "p": prev, "h": h, "s": r.seq})
            prev = h


def _drop_all_guards(log: AuditLog) -> None:
    with log.engine.begin() as c:
        if log.engine.dialect.name == "postgresql":
            c.execute(text("DROP TRIGGER audit_log_no_update ON audit_log"))
            c.execute(text("DROP TRIGGER audit_log_no_truncate ON audit_log"))
        else:
            c.execute(text("DROP TRIGGER audit_log_no_update"))
            c.execute(text("DROP TRIGGER audit_log_no_delete"))


def test_keyed_chain_verifies_only_with_its_key(keyed):
    from dcops.alerts.storage.audit import read_anchors

    _fill(keyed, 6)
    assert keyed.verify().ok and keyed.verify().keyed
    assert not keyed.verify(key=b"another-key").ok
    plain = AuditLog(keyed.engine)  # a reader without the key cannot vouch for a keyed chain
    v = plain.verify()
    assert not v.ok and "audit key" in v.reason
    keyed.anchor("test")
    assert read_anchors(keyed.anchor_file)[-1]["seq"] == 6


@pytest.mark.parametrize("attack", ["rehash edited chain", "delete tail", "empty table", "delete tail and rehash"])
def test_privileged_editor_is_detected(keyed, attack):
    from dcops.alerts.storage.audit import read_anchors

    _fill(keyed, 5)
    keyed.anchor("test")  # the chain head leaves the database
    _fill(keyed, 3)
    keyed.anchor("test")
    _drop_all_guards(keyed)  # the table's owner can do this
    with keyed.engine.begin() as c:
        if attack == "rehash edited chain":
            pass
        elif attack in ("delete tail", "delete tail and rehash"):
            c.execute(text("DELETE FROM audit_log WHERE seq > 6"))
        elif attack == "empty table":
            c.execute(text("DELETE FROM audit_log"))
    if attack == "rehash edited chain":
        _rehash_all(keyed, edit_seq=3)
    if attack == "delete tail and rehash":
        _rehash_all(keyed, edit_seq=2)
    anchors = read_anchors(keyed.anchor_file)
    with_key = keyed.verify(anchors=anchors)
    assert not with_key.ok, attack
    without_key = AuditLog(keyed.engine).verify(anchors=anchors, require_key=False)
    assert not without_key.ok, f"{attack}: anchors alone catch it too ({without_key})"


def test_operator_actions_are_append_only(db_url):
    from dcops.alerts.storage.tables import OperatorActionRow, open_engine

    eng = open_engine(db_url) if db_url.startswith("sqlite") else create_engine(db_url)
    from dcops.alerts.storage.tables import Base

    Base.metadata.create_all(eng)
    AuditLog(eng).ensure_schema()  # installs the operator_actions guard
    from sqlalchemy.orm import Session

    with Session(eng) as s, s.begin():
        s.add(OperatorActionRow(time_ns=1, user="alice", action="ack", target_kind="alarm", target_id="a1", data={}))
    for sql in ("UPDATE operator_actions SET \"user\" = 'mallory'", "DELETE FROM operator_actions"):
        with pytest.raises(DBAPIError, match="append-only"):
            with eng.begin() as c:
                c.execute(text(sql))
    eng.dispose()
