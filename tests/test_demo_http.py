"""The demo's pager and control endpoint run on the one HTTP server helper (dcops.httpserve)."""

from __future__ import annotations

import json
import time

import httpx

from dcops.alerts.notification.notifiers.webhook import signature_headers
from dcops.demo_control import ControlServer, read_control
from dcops.demo_pager import DemoPager
from dcops.httpserve import request_headers


def test_request_headers_lower_case_names():
    env = {"HTTP_X_DCOPS_TOKEN": "t", "HTTP_WEBHOOK_ID": "m1", "CONTENT_TYPE": "application/json", "PATH_INFO": "/"}
    assert request_headers(env) == {"x-dcops-token": "t", "webhook-id": "m1", "content-type": "application/json"}


def test_pager_checks_signatures_and_prints_each_page_once():
    said = []
    pager = DemoPager(said.append)
    pager.start()
    try:
        body = json.dumps({"incident": {"event": "trigger", "severity": "major", "title": "CRAC-1 down"}}).encode()
        headers = {"Idempotency-Key": "k1", "Content-Type": "application/json",
                   **signature_headers((pager.secret,), "k1", int(time.time()), body)}
        assert httpx.post(pager.url, content=body, headers=headers).status_code == 200
        assert httpx.post(pager.url, content=body, headers=headers).status_code == 200  # a retry: not printed again
        forged = dict(headers, **signature_headers(("other-secret",), "k1", int(time.time()), body))
        assert httpx.post(pager.url, content=body, headers=forged).status_code == 401
        assert httpx.get(pager.url).status_code == 405
    finally:
        pager.stop()
    assert said == ["page -> on-call: trigger | major | CRAC-1 down"]
    assert len(pager.received) == 2 and pager.refused == 1


def test_control_endpoint_token_paths_and_body_limit(tmp_path):
    class Label:
        def to_dict(self):
            return {"fault_id": "f1", "fault_type": "crac_failure", "target": "CRAC-1"}

    calls = []
    ctl = ControlServer(tmp_path, lambda f, t, d: calls.append((f, t, d)) or Label(), lambda: [Label()])
    ctl.start()
    try:
        info = read_control(tmp_path)
        hdr = {"X-DCOPS-Token": info["token"]}
        assert (tmp_path / "control.json").stat().st_mode & 0o777 == 0o600
        assert httpx.get(info["url"] + "/faults").status_code == 403
        assert httpx.get(info["url"] + "/faults", headers=hdr).json() == [Label().to_dict()]
        r = httpx.post(info["url"] + "/inject", headers=hdr, json={"fault": "crac_failure", "target": "CRAC-1"})
        assert r.status_code == 200 and calls == [("crac_failure", "CRAC-1", -1.0)]
        assert httpx.post(info["url"] + "/inject", headers=hdr, json={"fault": 1}).status_code == 400
        assert httpx.post(info["url"] + "/inject", headers=hdr, content=b"x" * 70000).status_code == 413
        assert httpx.get(info["url"] + "/nope", headers=hdr).status_code == 404
    finally:
        ctl.stop()
    assert not (tmp_path / "control.json").exists()
