"""The alerter end to end on SQLite and on a real PostgreSQL (Debian's server, throwaway
cluster): incidents, escalation jobs, operator actions and durable delivery to a loopback
receiver that fails for a while."""

from __future__ import annotations

import pytest

from dcops.alerts.config import alerting_from_text
from dcops.alerts.storage.repository import Repository
from dcops.alerts.service import Alerter
from dcops.bus import InProcessBus
from dcops.sim import Simulator
from tests.alerts.helpers import Receiver, pump, wait_for
from tests.integration.pg_fixtures import db_url, pg_cluster  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow


def test_alerter_on_both_databases(small_site, db_url):  # noqa: F811
    rec = Receiver(fail_first=3, secret=b"k")
    cfg = alerting_from_text(f"""
receivers:
  - {{name: noc, type: webhook, url: "{rec.url}", secret: k}}
route: {{receiver: noc, escalation: later}}
escalation_policies:
  - {{name: later, levels: [{{after_s: 3600, targets: ["receiver:noc"]}}]}}
outbox: {{backoff_base_s: 0.05, backoff_max_s: 0.2, poll_s: 0.05}}
""")
    sim, bus = Simulator(small_site, seed=31), InProcessBus()
    a = Alerter(bus, sim.inventory, alerting=cfg, db_url=db_url, time_source="data").start()
    try:
        cur = pump(sim, bus, 10)
        sim.inject("crac_failure", "CRAC-3", duration_s=3000)
        sim.inject("pdu_breaker_trip", "PDU-A1", duration_s=3000)
        pump(sim, bus, 12, cur)
        a.drain()
        repo = Repository(db_url, sim.inventory)
        incs = repo.list_incidents()
        assert {i.root_component for i in incs} == {"CRAC-3", "PDU-A1"}
        pdu = next(i for i in incs if i.root_component == "PDU-A1")
        assert len(pdu.alarm_ids) >= 3 and a.escalator.pending(pdu.id)
        repo.acknowledge_incident(pdu.id, "alice")
        repo.add_note(pdu.id, "alice", "on site")
        a.process_once(timeout_s=0.05)
        assert not a.escalator.pending(pdu.id)
        assert wait_for(lambda: repo.delivery_summary() == {"delivered": 3}, 20), repo.delivery_summary()
        assert rec.rejected == 3 and all(c == 1 for c in rec.accepted.values()) and len(rec.accepted) == 3
        timeline = repo.get_incident(pdu.id).timeline
        assert [e.text for e in timeline if e.kind.value == "note"] == ["on site"]
        assert any(e.kind.value == "notification" and "delivered" in e.text for e in timeline)
    finally:
        a.close()
        rec.close()
