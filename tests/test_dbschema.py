"""Alembic owns every schema: `dcops db upgrade|current|stamp`, the gate a role passes at start,
and an upgrade from the previous revision keeps what the database held."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from sqlalchemy import create_engine, inspect, text

from dcops import dbschema
from dcops.cli import main
from dcops.commands.role import prepare_database

PREVIOUS = "0002_audit"


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path / 'db' / 'dcops.sqlite'}"


def _tables(url):
    eng = create_engine(url)
    try:
        return set(inspect(eng).get_table_names())
    finally:
        eng.dispose()


def test_upgrade_from_the_previous_revision_keeps_the_data(url, capsys):
    dbschema.upgrade(url, PREVIOUS)
    eng = create_engine(url)
    with eng.begin() as c:
        c.execute(text("INSERT INTO incidents (id, title, state, severity, opened_ns, updated_ns, opened_by, labels)"
                       " VALUES ('inc1', 'CRAC-1 failed', 'open', 'major', 1, 2, 'alerter', '{}')"))
        c.execute(text("INSERT INTO console_login_failures (key, time_s) VALUES ('account:bob', 5.0)"))
    eng.dispose()
    assert {"console_users", "console_sessions", "dcops_escalation_jobs"} & _tables(url) == set()

    st = dbschema.state(url)
    assert st.current == PREVIOUS and not st.up_to_date and st.head != PREVIOUS
    with pytest.raises(dbschema.SchemaBehind, match=f"at {PREVIOUS}.*dcops db upgrade"):
        dbschema.require_current(url)
    assert main(["db", "current", "--db", url]) == 1
    assert "behind" in capsys.readouterr().out

    assert main(["db", "upgrade", "--db", url]) == 0
    assert f"upgraded {PREVIOUS} -> {st.head}" in capsys.readouterr().out
    assert {"console_users", "console_sessions", "dcops_escalation_jobs"} <= _tables(url)
    eng = create_engine(url)
    with eng.connect() as c:
        assert c.execute(text("SELECT title FROM incidents")).scalar_one() == "CRAC-1 failed"
        assert c.execute(text("SELECT key FROM console_login_failures")).scalar_one() == "account:bob"
    eng.dispose()
    # the new tables work for their owners: console accounts and APScheduler's job store
    from dcops.console.users import UserStore

    users = UserStore.from_url(url)
    users.create_user("alice", "correct horse battery", "operator")
    assert users.verify("alice", "correct horse battery").role == "operator"
    users.engine.dispose()
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

    from dcops.alerts.notification.escalation import JOB_TABLE

    store = SQLAlchemyJobStore(url=url, tablename=JOB_TABLE)
    assert store.get_all_jobs() == []
    store.shutdown()

    assert main(["db", "current", "--db", url, "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["current"] == out["head"] == st.head and out["up_to_date"] is True
    assert main(["db", "upgrade", "--db", url]) == 0
    assert "already at" in capsys.readouterr().out


def test_a_database_made_by_create_all_is_adopted_not_migrated_twice(url):
    eng = create_engine(url.replace("/db/", "/"))
    url = str(eng.url)
    for md in dbschema.target_metadata():
        md.create_all(eng)
    eng.dispose()
    st = dbschema.state(url)
    assert st.legacy and st.current is None
    assert dbschema.upgrade(url).up_to_date


def test_a_partial_legacy_database_is_refused_naming_what_is_missing(tmp_path):
    from dcops.alerts.storage.tables import Base

    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    eng = create_engine(url)
    Base.metadata.create_all(eng)
    eng.dispose()
    with pytest.raises(dbschema.SchemaBehind, match="console_users.*dcops db stamp"):
        dbschema.upgrade(url)


def test_a_role_upgrades_sqlite_but_refuses_a_behind_database_unless_told(url, capsys):
    cfg = SimpleNamespace(settings=SimpleNamespace(database=SimpleNamespace(url=url)))
    dbschema.upgrade(url, PREVIOUS)
    assert prepare_database(cfg, ["poller"], "site.yaml", migrate=False)  # no database role: untouched
    assert dbschema.state(url).current == PREVIOUS
    assert not prepare_database(cfg, ["alerter", "poller"], "site.yaml", migrate=False)
    err = capsys.readouterr().err
    assert "cannot start alerter" in err and f"at {PREVIOUS}" in err and "`dcops db upgrade -c site.yaml`" in err
    assert prepare_database(cfg, ["console"], "site.yaml", migrate=None)  # SQLite: this host's own file
    assert dbschema.state(url).up_to_date


def test_stamp_and_unknown_revision(url, capsys):
    assert main(["db", "stamp", PREVIOUS, "--db", url]) == 0
    assert dbschema.state(url).current == PREVIOUS
    assert main(["db", "upgrade", "--db", url, "--revision", "nope"]) == 2
    assert "nope" in capsys.readouterr().err


def test_running_services_leave_the_schema_to_alembic(tmp_path, monkeypatch, small_site):
    """The alerter role and the demo never call `create_all`: the schema is the migrations'."""
    import threading

    from sqlalchemy import MetaData

    from dcops.alerts.service import run_role
    from dcops.alerts.storage.repository import Repository
    from dcops.alerts.storage.tables import open_engine
    from dcops.batch import Event
    from dcops.bus import InProcessBus, publish_events
    from dcops.demo import Demo, DemoOptions
    from dcops.site import site_from_text
    from tests.alerts.helpers import wait_for
    from tests.conftest import SMALL_SITE

    calls = []
    real = MetaData.create_all
    monkeypatch.setattr(MetaData, "create_all", lambda self, *a, **k: calls.append(sorted(self.tables)) or real(self, *a, **k))

    url = f"sqlite:///{tmp_path}/role.sqlite"
    cfg = site_from_text(SMALL_SITE.read_text() + f"settings:\n  database: {{url: '{url}'}}\n")
    bus, stop = InProcessBus(), threading.Event()
    t = threading.Thread(target=run_role, args=(cfg, stop, bus), daemon=True)
    t.start()
    try:
        publish_events(bus, [Event(1_800_000_000 * 10**9, "ups_on_battery", "snmp",
                                   {"site": "test", "hall": "H1", "device": "UPS-B"}, "major", "on battery")])
        assert wait_for(lambda: (tmp_path / "role.sqlite").exists() and dbschema.state(url).up_to_date, 15)
        repo = Repository(open_engine(url, create_tables=False), None)
        assert wait_for(lambda: [a.component for a in repo.list_alarms()] == ["UPS-B"], 15)
    finally:
        stop.set()
        t.join(15)
    demo = Demo(small_site, DemoOptions(history=False, data_dir=tmp_path / "demo", interval_s=1.0, speed=20.0, console=False,
                                        snmp=False, analytics=False, faults=()), say=lambda s: None)
    demo.start()
    assert demo.stop() == []
    assert dbschema.state(demo.alerts_db_url).up_to_date
    assert calls == []


def test_reading_the_state_creates_no_database(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'var' / 'none.sqlite'}"
    assert main(["db", "current", "--db", url]) == 1
    assert "empty (no revision)" in capsys.readouterr().out
    assert not (tmp_path / "var").exists()
