"""Durable delivery against REAL HTTP receivers on loopback.

- A receiver that answers 500 for a while and then recovers receives every notification
  exactly once per idempotency key (signed, HMAC-SHA256 with timestamp).
- Restarting the alerter mid-stream (including a crash between the database write and the
  bus commit, and the receiver down meanwhile) loses nothing and duplicates nothing.
"""

from __future__ import annotations

import pytest

from dcops.alerts.config import alerting_from_text
from dcops.alerts.storage.repository import Repository
from dcops.alerts.service import Alerter
from dcops.bus import InProcessBus
from dcops.sim import Simulator
from tests.alerts.helpers import Receiver, alerting_yaml, pump, wait_for

pytestmark = pytest.mark.slow

SECRET = "s3cret-for-tests"


def _faults(sim):
    sim.inject("crac_failure", "CRAC-1", duration_s=600)
    sim.inject("pdu_breaker_trip", "PDU-B2", duration_s=300)
    sim.inject("gpu_xid79", "R2-01-S01:2", duration_s=400)


@pytest.fixture
def receiver():
    r = Receiver(fail_first=6, secret=SECRET.encode())
    yield r
    r.close()


def _alerter(bus, inv, cfg, db_url):
    return Alerter(bus, inv, alerting=cfg, db_url=db_url, time_source="data", escalation=False).start()


def test_flaky_receiver_gets_each_notification_exactly_once(small_site, tmp_path, receiver):
    sim = Simulator(small_site, seed=3)
    bus = InProcessBus()
    cfg = alerting_from_text(alerting_yaml(("noc", receiver.url, SECRET)))
    db = f"sqlite:///{tmp_path}/alerts.sqlite"
    alerter = _alerter(bus, sim.inventory, cfg, db)
    try:
        cur = pump(sim, bus, 12)
        _faults(sim)
        for _ in range(10):
            cur = pump(sim, bus, 10, cur)
            alerter.drain()
        repo = Repository(db)
        # incidents opened and later resolved: trigger + resolve for each
        assert wait_for(lambda: repo.delivery_summary().get("pending", 0) == 0, 30)
        notes = repo.notifications()
        assert len(notes) >= 4
        assert {n.status.value for n in notes} == {"delivered"}
        assert receiver.rejected >= 6                                   # it really failed for a while
        assert set(receiver.accepted) == {n.idempotency_key for n in notes}
        assert all(c == 1 for c in receiver.accepted.values()), receiver.accepted
        assert receiver.bad_signatures == 0
        retried = [n for n in notes if n.attempts > 1]
        assert retried, "some notifications must have needed retries"
        # one incident per fault, with the CRAC one carrying its root cause
        incidents = repo.list_incidents()
        roots = {i.root_component for i in incidents}
        assert {"CRAC-1", "PDU-B2"} <= roots
        actions = sorted(b["action"] for b in receiver.bodies.values())
        assert actions.count("trigger") == len(incidents) and actions.count("resolve") >= 1
    finally:
        alerter.close()


class _Crash(Exception):
    pass


def test_restart_mid_stream_loses_nothing(small_site, tmp_path, receiver):
    """Alerter A crashes between its DB write and the bus commit while the receiver is down;
    alerter B picks up: every incident is notified, each key accepted exactly once, and the
    outcome equals an uninterrupted reference run."""
    def run(db, crash: bool):
        sim = Simulator(small_site, seed=5)
        bus = InProcessBus()
        rec = Receiver(secret=SECRET.encode())
        cfg = alerting_from_text(alerting_yaml(("noc", rec.url, SECRET)))
        a = _alerter(bus, sim.inventory, cfg, db)
        cur = pump(sim, bus, 12)
        _faults(sim)
        cur = pump(sim, bus, 20, cur)
        if crash:
            rec.failing = True          # receiver down while A runs
            a.drain()
            cur = pump(sim, bus, 10, cur)

            def boom():
                raise _Crash()
            a._consumers["samples"].commit = boom   # crash after the cycle's DB write, before the commit
            with pytest.raises(_Crash):
                a.process_once(timeout_s=0.1)
            a.close()
            rec.failing = False
            a = _alerter(bus, sim.inventory, cfg, db)
        else:
            cur = pump(sim, bus, 10, cur)
        for _ in range(8):
            cur = pump(sim, bus, 10, cur)
            a.drain()
        repo = Repository(db)
        assert wait_for(lambda: repo.delivery_summary().get("pending", 0) == 0, 30)
        a.close()
        rec.close()
        notes = repo.notifications()
        return repo, notes, rec

    repo_c, notes_c, rec_c = run(f"sqlite:///{tmp_path}/crash.sqlite", crash=True)
    repo_r, notes_r, rec_r = run(f"sqlite:///{tmp_path}/ref.sqlite", crash=False)
    assert rec_c.rejected > 0
    assert set(rec_c.accepted) == {n.idempotency_key for n in notes_c}
    assert all(c == 1 for c in rec_c.accepted.values())
    # same incidents (by root component) and the same notification actions as the reference
    def shape(repo, notes):
        incs = {i.id: i.root_component for i in repo.list_incidents()}
        return sorted((incs[n.incident_id], n.action.value) for n in notes)
    assert shape(repo_c, notes_c) == shape(repo_r, notes_r)
    assert len(repo_c.list_incidents()) == len(repo_r.list_incidents()) >= 3
