"""The inbound Prometheus Alertmanager webhook over real HTTP on loopback."""

from __future__ import annotations

import httpx
import pytest

from dcops.alerts.inbound import PATH, alertmanager_app, serve
from dcops.alerts.storage.repository import Repository
from dcops.alerts.service import Alerter
from dcops.bus import InProcessBus
from dcops.topology import build_inventory

pytestmark = pytest.mark.slow

TOKEN = "am-token"


def _alert(status="firing", **labels):
    return {"status": status, "labels": {"alertname": "NodeDown", "severity": "critical", **labels},
            "annotations": {"summary": "node exporter down", "runbook_url": "https://runbooks/node-down"},
            "startsAt": "2026-11-28T10:00:00Z", "endsAt": "2026-11-28T10:05:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
            "fingerprint": "f00"}


@pytest.fixture
def endpoint(small_site, tmp_path):
    inv = build_inventory(small_site)
    db = f"sqlite:///{tmp_path}/inbound.sqlite"
    alerter = Alerter(InProcessBus(), inv, db_url=db, outbox=False, escalation=False).start()
    server, _ = serve(alertmanager_app(alerter.submit_signals, inv, token=TOKEN))
    url = f"http://127.0.0.1:{server.server_port}{PATH}"
    yield url, Repository(db)
    server.shutdown()
    server.server_close()
    alerter.close()


def _post(url, body, token=TOKEN):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(url, json=body, headers=headers, timeout=10)


def test_firing_and_resolved_alerts_become_alarms(endpoint):
    url, repo = endpoint
    body = {"version": "4", "status": "firing", "receiver": "dcops", "groupLabels": {}, "commonLabels": {},
            "alerts": [_alert(instance="R1-02-S01:9100", probable_cause="underlyingResourceUnavailable",
                              event_type="equipmentAlarm")]}
    r = _post(url, body)
    assert r.status_code == 200 and r.json() == {"accepted": 1}
    (alarm,) = repo.list_alarms()
    assert alarm.component == "R1-02-S01" and alarm.managed_object == "test/H1/R1/R1-02/R1-02-S01"
    assert alarm.severity.value == "critical" and alarm.probable_cause.value == "underlyingResourceUnavailable"
    assert alarm.rule == "alertmanager:NodeDown" and alarm.labels["source"] == "alertmanager"
    assert alarm.proposed_repair_actions == ("https://runbooks/node-down",)
    body["status"] = "resolved"
    body["alerts"] = [_alert("resolved", instance="R1-02-S01:9100", probable_cause="underlyingResourceUnavailable")]
    assert _post(url, body).status_code == 200
    assert repo.get_alarm(alarm.id).cleared_ns is not None


def test_bad_bodies_get_clear_errors(endpoint):
    url, repo = endpoint
    r = _post(url, {"status": "firing", "alerts": [{"status": "burning", "labels": {"a": "b"}, "startsAt": "yesterday"}]})
    assert r.status_code == 400
    problems = r.json()["problems"]
    assert any(p.startswith("alerts.0.status:") for p in problems)
    assert any(p.startswith("alerts.0.startsAt:") for p in problems)
    r = httpx.post(url, content=b"{not json", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 400 and "not JSON" in r.json()["error"]
    assert _post(url, {"status": "firing", "alerts": [_alert()]}, token="wrong").status_code == 401
    assert httpx.get(url).status_code == 405
    assert repo.list_alarms() == []


def test_alerter_serves_the_endpoint_from_its_config(small_site, tmp_path):
    from dcops.alerts.config import alerting_from_text

    cfg = alerting_from_text("inbound: {host: 127.0.0.1, port: 0, token: t0k}\n")
    db = f"sqlite:///{tmp_path}/cfg.sqlite"
    a = Alerter(InProcessBus(), build_inventory(small_site), alerting=cfg, db_url=db, outbox=False, escalation=False).start()
    try:
        url = f"http://127.0.0.1:{a.inbound_server.server_port}{PATH}"
        body = {"status": "firing", "alerts": [_alert(device="CRAC-2", probable_cause="heatingVentCoolingSystemProblem",
                                                      event_type="environmentalAlarm")]}
        assert _post(url, body, token="t0k").status_code == 200
        (alarm,) = Repository(db).list_alarms()
        assert alarm.component == "CRAC-2" and alarm.probable_cause.value == "heatingVentCoolingSystemProblem"
    finally:
        a.close()
    assert a.inbound_server is None
