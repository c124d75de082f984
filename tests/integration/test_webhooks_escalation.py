"""Escalation on APScheduler with a SQL job store: fires when nobody acknowledges, stops on
acknowledgement, and survives an alerter restart (jobs live in the database)."""

from __future__ import annotations

import time

import pytest

from dcops.alerts.config import alerting_from_text
from dcops.alerts.storage.repository import Repository
from dcops.alerts.service import Alerter
from dcops.bus import InProcessBus
from dcops.sim import Simulator
from tests.alerts.helpers import Receiver, pump, wait_for

pytestmark = pytest.mark.slow


def _cfg(noc: Receiver, oncall: Receiver, after_s: float) -> str:
    return f"""
receivers:
  - {{name: noc, type: webhook, url: "{noc.url}"}}
  - {{name: oncall-hook, type: webhook, url: "{oncall.url}"}}
route:
  receiver: noc
  routes:
    - {{matchers: ['kind=~"pdu|ups|cooling"'], receiver: noc, escalation: facilities}}
users:
  dave: {{receivers: [oncall-hook]}}
schedules:
  - {{name: facilities-primary, rotation: {{users: [dave], start: "2026-01-05T09:00:00Z"}}}}
escalation_policies:
  - name: facilities
    levels: [{{after_s: {after_s}, targets: ["schedule:facilities-primary"]}}]
outbox: {{backoff_base_s: 0.05, backoff_max_s: 0.2, poll_s: 0.05}}
grouping: {{group_wait_s: 0}}
"""


@pytest.fixture
def hooks():
    noc, oncall = Receiver(), Receiver()
    yield noc, oncall
    noc.close()
    oncall.close()


def _start(bus, inv, cfg, db):
    return Alerter(bus, inv, alerting=alerting_from_text(cfg), db_url=db, time_source="data").start()


def test_unacknowledged_incident_escalates_to_the_on_call(small_site, tmp_path, hooks):
    noc, oncall = hooks
    sim, bus, db = Simulator(small_site, seed=21), InProcessBus(), f"sqlite:///{tmp_path}/esc.sqlite"
    a = _start(bus, sim.inventory, _cfg(noc, oncall, 1.0), db)
    try:
        cur = pump(sim, bus, 5)
        sim.inject("pdu_breaker_trip", "PDU-B1", duration_s=3000)
        pump(sim, bus, 3, cur)
        a.drain()
        assert wait_for(lambda: len(noc.accepted) == 1, 10)
        assert wait_for(lambda: len(oncall.accepted) == 1, 15), "level 1 must page the on-call after 1 s"
        body = next(iter(oncall.bodies.values()))
        assert body["oncall"] == "dave" and body["escalation_level"] == "0.0" and body["action"] == "trigger"
        inc = Repository(db).list_incidents()[0]
        assert any(e.kind.value == "escalation" for e in Repository(db).get_incident(inc.id).timeline)
    finally:
        a.close()


def test_acknowledged_incident_does_not_escalate(small_site, tmp_path, hooks):
    noc, oncall = hooks
    sim, bus, db = Simulator(small_site, seed=22), InProcessBus(), f"sqlite:///{tmp_path}/ack.sqlite"
    a = _start(bus, sim.inventory, _cfg(noc, oncall, 3.0), db)
    try:
        cur = pump(sim, bus, 5)
        sim.inject("pdu_breaker_trip", "PDU-B1", duration_s=3000)
        pump(sim, bus, 3, cur)
        a.drain()
        repo = Repository(db)
        (inc,) = repo.list_incidents()
        assert a.escalator.pending(inc.id)
        repo.acknowledge_incident(inc.id, "erin")
        a.process_once(timeout_s=0.05)                  # the alerter sees the acknowledgement
        assert wait_for(lambda: not a.escalator.pending(inc.id), 5)
        time.sleep(3.5)
        assert oncall.accepted == {}
        assert wait_for(lambda: sorted(b["action"] for b in noc.bodies.values()) == ["acknowledge", "trigger"], 10)
    finally:
        a.close()


def test_escalation_survives_a_restart(small_site, tmp_path, hooks):
    noc, oncall = hooks
    sim, bus, db = Simulator(small_site, seed=23), InProcessBus(), f"sqlite:///{tmp_path}/restart.sqlite"
    cfg = _cfg(noc, oncall, 2.0)
    a = _start(bus, sim.inventory, cfg, db)
    cur = pump(sim, bus, 5)
    sim.inject("ups_on_battery", "UPS-B", duration_s=3000)
    cur = pump(sim, bus, 3, cur)
    a.drain()
    (inc,) = Repository(db).list_incidents()
    assert a.escalator.pending(inc.id)
    a.close()                                             # down before the escalation is due
    assert oncall.accepted == {}
    time.sleep(2.5)
    b = _start(bus, sim.inventory, cfg, db)               # the job was stored; it runs late, once
    try:
        assert wait_for(lambda: len(oncall.accepted) == 1, 15)
        assert sum(oncall.accepted.values()) == 1
    finally:
        b.close()


def test_silenced_incident_does_not_escalate(small_site, tmp_path, hooks):
    noc, oncall = hooks
    sim, bus, db = Simulator(small_site, seed=24), InProcessBus(), f"sqlite:///{tmp_path}/sil.sqlite"
    a = _start(bus, sim.inventory, _cfg(noc, oncall, 2.0), db)
    try:
        cur = pump(sim, bus, 5)
        sim.inject("pdu_breaker_trip", "PDU-B1", duration_s=3000)
        cur = pump(sim, bus, 3, cur)
        a.drain()
        repo = Repository(db, sim.inventory)
        (inc,) = repo.list_incidents()
        assert wait_for(lambda: len(noc.accepted) == 1, 10)            # paged before the silence
        repo.create_silence(['device="PDU-B1"'], sim.now_ns - 10**9, sim.now_ns + 3600 * 10**9, "erin", "electrician on site")
        pump(sim, bus, 1, cur)
        a.drain()
        assert wait_for(lambda: any(e.kind.value == "suppressed" and "escalation" in e.text
                                    for e in repo.get_incident(inc.id).timeline), 10)
        assert oncall.accepted == {}
    finally:
        a.close()
