"""The alerter as a `dcops up` role: consumes the bus, keeps alarms in the configured database."""

from __future__ import annotations

import threading

from dcops.alerts.storage.repository import Repository
from dcops.alerts.service import Alerter, run_role
from dcops.bus import InProcessBus, publish_events
from dcops.batch import Event
from dcops.site import site_from_text
from tests.conftest import SMALL_SITE
from tests.alerts.helpers import wait_for


def test_run_role_processes_events_until_stopped(tmp_path):
    text = SMALL_SITE.read_text() + f"settings:\n  database: {{url: 'sqlite:///{tmp_path}/role.sqlite'}}\n"
    cfg = site_from_text(text)
    bus = InProcessBus()
    stop = threading.Event()
    t = threading.Thread(target=run_role, args=(cfg, stop, bus), daemon=True)
    t.start()
    try:
        publish_events(bus, [Event(1_800_000_000 * 10**9, "ups_on_battery", "snmp", {"site": "test", "hall": "H1",
                                                                                   "device": "UPS-B"}, "major", "on battery")])
        from dcops.dbschema import state

        # the role makes its schema with the Alembic migrations (SQLite: at start); read once it has
        assert wait_for(lambda: (tmp_path / "role.sqlite").exists() and state(f"sqlite:///{tmp_path}/role.sqlite").up_to_date, 15)
        repo = Repository(f"sqlite:///{tmp_path}/role.sqlite")
        assert wait_for(lambda: [a.component for a in repo.list_alarms()] == ["UPS-B"], 15)
    finally:
        stop.set()
        t.join(15)
    assert not t.is_alive()


def test_undecodable_messages_go_to_the_dead_letter_topic(small_inventory, tmp_path):
    bus = InProcessBus()
    dead = bus.consumer("deadletter", "test")
    a = Alerter(bus, small_inventory, db_url=f"sqlite:///{tmp_path}/dl.sqlite", outbox=False, escalation=False).start()
    try:
        bus.publish("events", "k", b"garbage")
        a.drain(timeout_s=5)
        assert a.deadlettered == 1
        assert [m.value for m in dead.poll(0.1)] == [b"garbage"]
    finally:
        a.close()


def test_alerter_exports_metrics_and_health(small_inventory, tmp_path):
    from dcops.metrics import Metrics

    m = Metrics(role="alerter")
    bus = InProcessBus()
    a = Alerter(bus, small_inventory, db_url=f"sqlite:///{tmp_path}/m.sqlite", escalation=False, metrics=m).start()
    try:
        publish_events(bus, [Event(1_800_000_000 * 10**9, "breaker_trip", "snmp",
                                   {"site": "test", "hall": "H1", "device": "PDU-B1"}, "critical", "tripped")])
        a.drain(timeout_s=5)
        assert m.value("alarms_raised", severity="major") == 1.0          # redundancy-aware: B1 is not critical
        assert m.value("outbox_depth", outbox="alerts") == 0.0
        ok, report = m.health.report()
        assert ok and "alerter" in str(report)
    finally:
        a.close()
    assert "alerter" not in m.health.names()


def test_alerter_role_writes_its_state_changes_to_the_keyed_audit_chain(tmp_path, monkeypatch):
    from sqlalchemy import create_engine

    from dcops.alerts.storage.audit import AuditLog, read_anchors

    monkeypatch.setenv("DCOPS_AUDIT_KEY", "alerter-test-key")
    text = SMALL_SITE.read_text() + (f"settings:\n  database: {{url: 'sqlite:///{tmp_path}/a.sqlite',"
                                     f" audit_key: 'env:DCOPS_AUDIT_KEY', audit_anchor_file: '{tmp_path}/anchors.jsonl'}}\n")
    cfg = site_from_text(text)
    bus = InProcessBus()
    stop = threading.Event()
    t = threading.Thread(target=run_role, args=(cfg, stop, bus), daemon=True)
    t.start()
    log = AuditLog(create_engine(f"sqlite:///{tmp_path}/a.sqlite"), key=b"alerter-test-key")
    try:
        publish_events(bus, [Event(1_800_000_000 * 10**9, "ups_on_battery", "snmp", {"site": "test", "hall": "H1",
                                                                                   "device": "UPS-B"}, "major", "on battery")])
        def cycles():
            try:
                return [r for r in log.records() if r.action == "alerter.cycle" and r.data["alarms_changed"]]
            except Exception:  # the role creates the table when it starts
                return []

        assert wait_for(cycles, 15)
    finally:
        stop.set()
        t.join(15)
    cycle = next(r for r in log.records() if r.action == "alerter.cycle")
    assert cycle.actor == "alerter" and cycle.data["alarms"]
    v = log.verify(anchors=read_anchors(tmp_path / "anchors.jsonl"))
    assert v.ok and v.keyed and v.anchors_checked >= 1
