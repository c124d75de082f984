"""The inbound Prometheus Alertmanager webhook over real HTTP (waitress on loopback), with
real-shaped bodies and hostile ones: one bad alert never blocks the next request."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from dcops.alerts.inbound import MAX_BODY, PATH, alertmanager_app, serve
from dcops.alerts.storage.repository import Repository
from dcops.alerts.service import Alerter
from dcops.bus import InProcessBus
from dcops.topology import build_inventory
from tests.alerts.test_inbound import dcgm_on

pytestmark = pytest.mark.slow

TOKEN = "am-token"


def _alert(status="firing", starts="2026-11-28T10:00:00Z", fp="f00", **labels):
    return {"status": status, "labels": {"alertname": "NodeDown", "severity": "critical", **labels},
            "annotations": {"summary": "node exporter down", "runbook_url": "https://runbooks/node-down"},
            "startsAt": starts, "endsAt": "2026-11-28T10:05:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
            "fingerprint": fp, "generatorURL": "http://prometheus:9090/graph?g0.expr=up"}


def _body(*alerts, status="firing", **env):
    return {"version": "4", "status": status, "receiver": "dcops", "groupKey": "{}:{}", "groupLabels": {},
            "commonLabels": {}, "externalURL": "http://alertmanager:9093", "truncatedAlerts": 0, "alerts": list(alerts),
            **env}


@pytest.fixture
def endpoint(small_site, tmp_path):
    inv = build_inventory(small_site)
    db = f"sqlite:///{tmp_path}/inbound.sqlite"
    alerter = Alerter(InProcessBus(), inv, db_url=db, outbox=False, escalation=False).start()
    server = serve(alertmanager_app(alerter.submit_signals, inv, token=TOKEN), channel_timeout_s=2)
    url = f"http://127.0.0.1:{server.port}{PATH}"
    yield url, Repository(db), server
    server.close()
    alerter.close()


def _post(url, body, token=TOKEN):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(url, json=body, headers=headers, timeout=10)


def _active(repo):
    return {a.component: a for a in repo.list_alarms() if a.cleared_ns is None}


def test_firing_and_resolved_alerts_become_alarms(endpoint):
    url, repo, _ = endpoint
    r = _post(url, _body(_alert(instance="R1-02-S01:9100", probable_cause="underlyingResourceUnavailable",
                                event_type="equipmentAlarm")))
    assert r.status_code == 200 and r.json() == {"accepted": 1}
    alarm = _active(repo)["R1-02-S01"]
    assert alarm.managed_object == "test/H1/R1/R1-02/R1-02-S01" and alarm.labels["component_label"] == "instance"
    assert alarm.severity.value == "critical" and alarm.probable_cause.value == "underlyingResourceUnavailable"
    assert alarm.rule == "alertmanager:NodeDown@f00" and alarm.labels["source"] == "alertmanager"
    assert alarm.proposed_repair_actions == ("https://runbooks/node-down",)
    assert alarm.labels["generator_url"] == "http://prometheus:9090/graph?g0.expr=up"
    assert "http://alertmanager:9093" in alarm.additional_text
    r = _post(url, _body(_alert("resolved", instance="R1-02-S01:9100", probable_cause="underlyingResourceUnavailable"),
                         status="resolved"))
    assert r.status_code == 200
    assert repo.get_alarm(alarm.id).cleared_ns is not None


def test_dcgm_alerts_of_several_hosts_stay_apart(endpoint):
    url, repo, _ = endpoint
    hosts = ("R1-01-S01", "R1-01-S02", "R1-02-S01")
    alerts = [{**_alert(fp=f"fp-{h}", **dcgm_on(h)), "labels": dcgm_on(h)} for h in hosts]
    assert _post(url, _body(*alerts)).status_code == 200
    assert {f"{h}:0" for h in hosts} <= set(_active(repo))
    resolved = {**alerts[0], "status": "resolved", "endsAt": "2026-11-28T10:05:00Z"}
    assert _post(url, _body(resolved, status="resolved")).status_code == 200
    active = _active(repo)
    assert "R1-01-S01:0" not in active and {"R1-01-S02:0", "R1-02-S01:0"} <= set(active)


@pytest.mark.parametrize("starts", ["2300-01-01T00:00:00Z", "9999-12-31T23:59:59Z"])
def test_a_bad_alert_is_refused_alone_and_never_blocks_the_next(endpoint, starts):
    url, repo, _ = endpoint
    assert _post(url, _body(_alert(instance="R1-01-S01:9100", fp="a1"))).status_code == 200
    # the same alert again (dedups onto the open alarm) with a hostile start, plus a good new one
    r = _post(url, _body(_alert(instance="R1-01-S01:9100", fp="a1", starts=starts),
                         _alert(instance="R1-01-S02:9100", fp="a2")))
    assert r.status_code == 422, r.text
    j = r.json()
    assert j["accepted"] == 1 and j["refused"][0]["index"] == 0 and "startsAt" in j["refused"][0]["problems"][0]
    assert "R1-01-S02" in _active(repo)
    warn = _active(repo)["alertmanager:dcops"]
    assert "refused" in warn.specific_problem
    for i in range(3):  # later valid alerts keep working
        r = _post(url, _body(_alert(instance="R1-02-S01:9100", fp=f"n{i}")))
        assert r.status_code == 200, r.text
    assert "R1-02-S01" in _active(repo)


def test_truncated_group_is_visible(endpoint):
    url, repo, _ = endpoint
    assert _post(url, _body(_alert(instance="R1-01-S01:9100"), truncatedAlerts=12)).status_code == 200
    warn = _active(repo)["alertmanager:dcops"]
    assert "truncated 12 alert(s)" in warn.specific_problem and warn.severity.value == "warning"


def test_bad_bodies_get_clear_errors(endpoint):
    url, repo, _ = endpoint
    r = _post(url, {"status": "firing", "alerts": [{"status": "burning", "labels": {"a": "b"}, "startsAt": "yesterday"}]})
    assert r.status_code == 422
    problems = r.json()["refused"][0]["problems"]
    assert any(p.startswith("alerts.0.status:") for p in problems)
    assert any(p.startswith("alerts.0.startsAt:") for p in problems)
    r = _post(url, {"status": "sideways", "alerts": []})
    assert r.status_code == 400 and any(p.startswith("status:") for p in r.json()["problems"])
    auth = {"Authorization": f"Bearer {TOKEN}"}
    r = httpx.post(url, content=b"{not json", headers=auth)
    assert r.status_code == 400 and "not JSON" in r.json()["error"]
    for depth in (50, 100_000):  # deep nesting: a clear 400, never a 500 with a traceback
        r = httpx.post(url, content=b"[" * depth + b"]" * depth, headers=auth)
        assert r.status_code == 400 and "deeper" in r.json()["error"] and "Traceback" not in r.text
    r = httpx.post(url, content=b" " * (MAX_BODY + 1), headers=auth)
    assert r.status_code == 413
    assert _post(url, _body(_alert()), token="wrong").status_code == 401
    assert httpx.get(url).status_code == 405
    # nothing stored but the warning that an alert was refused
    assert [a.component for a in repo.list_alarms()] == ["alertmanager:default"]


def test_short_body_is_dropped_after_the_channel_timeout_and_the_server_keeps_serving(endpoint):
    url, repo, server = endpoint
    s = socket.create_connection(("127.0.0.1", server.port), timeout=15)
    s.sendall(f"POST {PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
              f"Content-Length: 5000\r\n\r\n{{\"status\":".encode())
    t0 = time.monotonic()
    assert _post(url, _body(_alert(instance="R1-01-S01:9100"))).status_code == 200   # not blocked meanwhile
    data = s.recv(4096)   # the server closes the half-sent request after its channel timeout (2 s here)
    waited = time.monotonic() - t0
    s.close()
    assert data in (b"",) or b"400" in data or b"408" in data
    assert waited < 10
    assert "R1-01-S01" in _active(repo)


def test_alerter_serves_the_endpoint_from_its_config(small_site, tmp_path):
    from dcops.alerts.config import alerting_from_text

    cfg = alerting_from_text("inbound: {host: 127.0.0.1, port: 0, token: t0k}\n")
    db = f"sqlite:///{tmp_path}/cfg.sqlite"
    a = Alerter(InProcessBus(), build_inventory(small_site), alerting=cfg, db_url=db, outbox=False, escalation=False).start()
    try:
        url = f"http://127.0.0.1:{a.inbound_server.port}{PATH}"
        body = _body(_alert(device="CRAC-2", probable_cause="heatingVentCoolingSystemProblem",
                            event_type="environmentalAlarm"))
        assert _post(url, body, token="t0k").status_code == 200
        alarm = _active(Repository(db))["CRAC-2"]
        assert alarm.probable_cause.value == "heatingVentCoolingSystemProblem" and alarm.labels["component_label"] == "device"
    finally:
        a.close()
    assert a.inbound_server is None
