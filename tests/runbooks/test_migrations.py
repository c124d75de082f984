"""Alembic: `alembic upgrade head` on an empty database gives exactly the tables, columns and
indexes of the SQLAlchemy metadata (alerts, runbook runs, audit log, console accounts, job store), with the audit guard
installed; `downgrade base` removes them. SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import DBAPIError

from dcops.alerts.storage.audit import AuditLog
from dcops.dbschema import target_metadata
from tests.conftest import REPO

METADATA = target_metadata()  # every table dcops uses: alerting, runbooks, audit, console, APScheduler jobs
TABLES = {t for md in METADATA for t in md.tables}


def _config(url: str) -> Config:
    cfg = Config(str(REPO / "alembic.ini"))
    cfg.set_main_option("script_location", str(REPO / "migrations"))
    cfg.attributes["url"] = url
    return cfg


def test_upgrade_head_matches_the_metadata(db_url):
    command.upgrade(_config(db_url), "head")
    eng = create_engine(db_url)
    try:
        insp = inspect(eng)
        assert set(insp.get_table_names()) - {"alembic_version"} == TABLES
        for md in METADATA:
            for name, table in md.tables.items():
                cols = {c["name"]: c for c in insp.get_columns(name)}
                assert set(cols) == {c.name for c in table.columns}, name
                for c in table.columns:
                    assert cols[c.name]["nullable"] == c.nullable, f"{name}.{c.name}"
                assert {i["name"] for i in insp.get_indexes(name)} >= {i.name for i in table.indexes}, name
        with eng.connect() as conn:
            mc = MigrationContext.configure(conn, opts={"compare_type": True, "include_object":
                                                        lambda o, n, t, r, c: t != "table" or n in TABLES})
            diff = compare_metadata(mc, METADATA)
        assert diff == [], f"migrations and metadata differ (write a new revision): {diff}"

        log = AuditLog(eng)
        log.append(actor="alice", role="operator", action="x", target_kind="incident", target_id="1")
        with pytest.raises(DBAPIError, match="append-only"):
            with eng.begin() as c:
                c.execute(text("DELETE FROM audit_log"))
        assert log.verify().ok
    finally:
        eng.dispose()

    command.downgrade(_config(db_url), "base")
    eng = create_engine(db_url)
    try:
        assert not set(inspect(eng).get_table_names()) & TABLES
    finally:
        eng.dispose()


def test_create_all_installs_the_same_guard(db_url):
    """Deployments that create tables through SQLAlchemy (`ensure_schema`) get the guard too."""
    eng = create_engine(db_url)
    try:
        log = AuditLog(eng)
        log.ensure_schema()
        log.append(actor="alice", role="operator", action="x", target_kind="incident", target_id="1")
        with pytest.raises(DBAPIError, match="append-only"):
            with eng.begin() as c:
                c.execute(text("UPDATE audit_log SET actor = 'eve'"))
    finally:
        eng.dispose()


def test_upgrade_from_the_previous_revision_keeps_rows(db_url):
    """A database at 0002_audit, with data, upgrades to head (SQLite and PostgreSQL) through
    `dcops.dbschema`, the code `dcops db upgrade` and the roles run."""
    from sqlalchemy import insert, select

    from dcops import dbschema
    from dcops.alerts.storage.tables import Base as AlertBase
    from dcops.console.users import UserStore

    dbschema.upgrade(db_url, "0002_audit")
    incidents = AlertBase.metadata.tables["incidents"]
    eng = create_engine(db_url)
    try:
        with eng.begin() as c:
            c.execute(insert(incidents).values(id="inc1", title="UPS-B on battery", state="open", severity="major",
                                               opened_ns=1, updated_ns=1, opened_by="alerter", labels={"row": "R1"}))
        assert not inspect(eng).has_table("console_users")
    finally:
        eng.dispose()
    with pytest.raises(dbschema.SchemaBehind, match="0002_audit"):
        dbschema.prepare(db_url, migrate=False)
    assert dbschema.prepare(db_url, migrate=True).up_to_date
    eng = create_engine(db_url)
    try:
        with eng.connect() as c:
            row = c.execute(select(incidents.c.title, incidents.c.labels)).one()
        assert tuple(row) == ("UPS-B on battery", {"row": "R1"})
        users = UserStore(eng)
        users.create_user("ops", "a long enough password", "operator")
        assert users.verify("ops", "a long enough password").role == "operator"
    finally:
        eng.dispose()
