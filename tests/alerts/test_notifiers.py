"""Notifiers against loopback receivers that check each service's published contract:
Standard Webhooks signatures (verified with the spec's algorithm), Slack Block Kit + mrkdwn
escaping, PagerDuty Events v2 fields."""

from __future__ import annotations

import base64
import json
import socket
import time

import httpx
import pytest
from standardwebhooks import Webhook

from dcops.alerts.config import OutboxSettings
from dcops.alerts.notification.notifiers import NOTIFIERS
from dcops.alerts.notification.notifiers.pagerduty import PagerDutyConfig, PagerDutyNotifier, pagerduty_body
from dcops.alerts.notification.notifiers.slack import SEVERITY_COLOUR, SlackConfig, SlackNotifier, slack_body
from dcops.alerts.notification.notifiers.webhook import WebhookConfig, WebhookNotifier, signature_headers, verify
from dcops.alerts.notification.outbox import backoff_s
from tests.alerts.helpers import Receiver
from tests.alerts.service_receivers import ServiceReceiver, slack_problems
from tests.alerts.stdwebhooks import reference_verify

OPENED = 1_795_000_000_000_000_000
HOSTILE = "<!channel> fan & PSU <http://evil.example|click here> <@U123>"
MSG = {"action": "trigger", "site": "test",
       "incident": {"id": "abc", "title": "CRAC-1 stopped", "severity": "major", "opened_ns": OPENED, "state": "open",
                    "root_component": "CRAC-1", "labels": {"hall": "H1", "epoch": "0"}},
       "root_alarm": {"managed_object": "test/H1/CRAC-1", "component": "CRAC-1", "severity": "major",
                      "probable_cause": "heatingVentCoolingSystemProblem", "raised_ns": OPENED - 10**9,
                      "specific_problem": "stopped", "proposed_repair_actions": ["restart it"], "root_cause": True},
       "symptom_count": 3,
       "alarms": [{"component": "R1-01-S01:0", "severity": "minor", "specific_problem": "GPU hot",
                   "probable_cause": "thresholdCrossed", "raised_ns": OPENED + 5 * 10**9}],
       "links": [{"href": "https://dcops.example/incident/abc", "text": "Open incident in dcops"},
                 {"href": "http://prometheus:9090/graph?g0.expr=up", "text": "Source (Prometheus)"}]}
PD_KEY = "R0UT1NGKEY0123456789abcdefABCDEF"   # 32 characters, as PagerDuty's integration keys


def test_registry():
    assert set(NOTIFIERS) == {"webhook", "slack", "pagerduty", "email"}


# ----- Standard Webhooks ------------------------------------------------------------------------
def test_standard_webhooks_signature_verifies_with_the_spec_algorithm_and_the_library():
    key = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
    body = b'{"a":1}'
    now = int(time.time())
    h = signature_headers((key,), "msg_2Kx", now, body)
    assert h["webhook-signature"].startswith("v1,") and h["webhook-id"] == "msg_2Kx"
    assert reference_verify(key, h, body)
    Webhook(key).verify(body, h)                                          # the library's receiver side agrees
    assert not reference_verify(key, h, body + b" ")                      # tampered body
    assert not reference_verify(key, {**h, "webhook-id": "msg_other"}, body)   # the id is covered too
    assert not reference_verify(key, signature_headers((key,), "msg_2Kx", now - 301, body), body)  # replayed late
    assert not reference_verify("whsec_" + base64.b64encode(b"x" * 32).decode(), h, body)
    assert verify(key, h, body) and not verify(key, {**h, "webhook-signature": "v1,AAAA"}, body)


def test_key_rotation_sends_one_signature_per_key():
    old, new = "old-secret-text", "whsec_" + base64.b64encode(b"new-key-32-bytes-new-key-32-byte").decode()
    body = b'{"x":2}'
    h = signature_headers((old, new), "id1", int(time.time()), body)
    assert len(h["webhook-signature"].split(" ")) == 2
    assert reference_verify(old.encode(), h, body) and reference_verify(new, h, body)   # either side of the rotation


@pytest.fixture
def client():
    with httpx.Client() as c:
        yield c


def test_webhook_sends_signed_json_with_idempotency_key(client, tmp_path, monkeypatch):
    (tmp_path / "hook_key").write_text("topsecret\n")
    monkeypatch.setenv("HOOK_NEXT", "next-key")
    rec = Receiver(secret=b"topsecret")
    try:
        cfg = WebhookConfig(url=rec.url, secret=f"file:{tmp_path}/hook_key", secrets=["env:HOOK_NEXT"])
        n = WebhookNotifier(cfg, client)
        res = n.send(MSG, "key-1")
        assert res.ok and res.status == 200 and rec.bad_signatures == 0
        assert rec.accepted == {"key-1": 1} and rec.bodies["key-1"]["incident"]["id"] == "abc"
        rec.secret = b"next-key"                          # the receiver moved to the new key: still verifies
        assert n.send(MSG, "key-1b").ok and rec.bad_signatures == 0
        rec.secret = b"a-key-nobody-signs-with"
        assert not n.send(MSG, "key-1c").ok and rec.bad_signatures == 1
        rec.failing = True
        res = n.send(MSG, "key-2")
        assert not res.ok and res.retryable and res.status == 500
    finally:
        rec.close()


def test_unreachable_receiver_is_retryable(client):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = WebhookNotifier(WebhookConfig(url=f"http://127.0.0.1:{port}/x", timeout_s=1), client).send(MSG, "k")
    assert not res.ok and res.retryable and "ConnectError" in res.error


# ----- Slack ---------------------------------------------------------------------------------------
def test_slack_escapes_mrkdwn_and_the_service_accepts_it(client):
    rec = ServiceReceiver("slack")
    hostile = {**MSG, "incident": {**MSG["incident"], "title": HOSTILE},
               "root_alarm": {**MSG["root_alarm"], "specific_problem": HOSTILE, "proposed_repair_actions": [HOSTILE]}}
    try:
        assert SlackNotifier(SlackConfig(url=rec.url), client).send(hostile, "k").ok, rec.refusals
        headers, body = rec.requests[0]
        assert rec.refusals == [] and "channel" not in body
        raw = json.dumps(body)
        assert "<!channel>" not in raw and "<http://evil" not in raw and "<@U123>" not in raw
        section = next(b for b in body["attachments"][0]["blocks"] if b["type"] == "section" and "text" in b)
        shown = section["text"]["text"].replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
        assert HOSTILE in shown                                 # displayed literally, not interpreted
        assert "&lt;!channel&gt; fan &amp; PSU" in body["text"]
    finally:
        rec.close()
    # the checker itself would have refused the unescaped text
    assert any(p.startswith("unescaped_control") for p in slack_problems({"text": HOSTILE}))


def test_slack_message_is_actionable(client):
    body = slack_body(MSG)
    att = body["attachments"][0]
    assert att["color"] == SEVERITY_COLOUR["major"]
    blocks = {b["type"]: b for b in att["blocks"]}
    assert blocks["header"]["text"]["text"] == "[MAJOR] CRAC-1 stopped"
    text = json.dumps(att["blocks"])
    assert "Root cause:" in text and "CRAC-1" in text and "restart it" in text and "3 correlated" in text
    buttons = blocks["actions"]["elements"]
    assert buttons[0]["url"] == "https://dcops.example/incident/abc" and buttons[0]["style"] == "primary"
    assert "2026-11-18T" in text                                  # opened, as a readable time
    assert slack_body({**MSG, "action": "resolve"})["attachments"][0]["color"] == "#2eb67d"
    assert slack_problems(body) == []


def test_slack_url_is_a_secret_and_channel_is_never_sent(monkeypatch):
    monkeypatch.setenv("SLACK_HOOK", "https://hooks.slack.com/services/T1/B2/abc")
    cfg = SlackConfig(url="env:SLACK_HOOK", channel="#noc")
    assert "abc" not in repr(cfg) and cfg.url.get_secret_value().endswith("/abc")
    assert "channel" not in slack_body(MSG)
    with pytest.raises(ValueError) as exc:
        SlackConfig(url="not-a-url-but-secret-xyz")
    assert "secret-xyz" not in str(exc.value)


# ----- PagerDuty -----------------------------------------------------------------------------------
def test_pagerduty_trigger_ack_resolve_pass_the_events_v2_checks(client):
    rec = ServiceReceiver("pagerduty")
    try:
        pd = PagerDutyNotifier(PagerDutyConfig(routing_key=PD_KEY, url=rec.url), client)
        for action in ("trigger", "acknowledge", "resolve"):
            res = pd.send({**MSG, "action": action}, f"abc:{action}")
            assert res.ok and res.status == 202, rec.refusals
        bodies = [b for _, b in rec.requests]
        assert [b["event_action"] for b in bodies] == ["trigger", "acknowledge", "resolve"]
        assert {b["dedup_key"] for b in bodies} == {"dcops-abc"}
        p = bodies[0]["payload"]
        assert p["severity"] == "error" and p["source"] == "test/H1/CRAC-1" and p["group"] == "H1"
        assert p["timestamp"] == "2026-11-18T11:06:40.000Z"
        assert bodies[0]["client_url"] == "https://dcops.example/incident/abc"
        assert bodies[0]["links"][1] == {"href": "http://prometheus:9090/graph?g0.expr=up", "text": "Source (Prometheus)"}
        d = p["custom_details"]
        assert d["opened"] == "2026-11-18T11:06:40.000Z" and d["symptoms"] == 3
        assert d["root cause"].startswith("MAJOR CRAC-1: stopped (heatingVentCoolingSystemProblem), raised 2026-11-18T")
        assert d["alarms"] == ["MINOR R1-01-S01:0: GPU hot (thresholdCrossed), raised 2026-11-18T11:06:45.000Z"]
        big_ints = [v for v in json.dumps(d).replace(",", " ").replace(":", " ").split() if v.isdigit() and len(v) > 12]
        assert big_ints == []                                        # no raw nanoseconds for a responder to decode
        assert "payload" not in bodies[1]
        assert rec.requests[0][0]["Idempotency-Key"] == "abc:trigger"
    finally:
        rec.close()
    crit = pagerduty_body({**MSG, "incident": {**MSG["incident"], "severity": "critical"}}, PD_KEY)
    assert crit["payload"]["severity"] == "critical"


def test_pagerduty_refused_event_is_permanent(client):
    rec = ServiceReceiver("pagerduty")
    try:
        res = PagerDutyNotifier(PagerDutyConfig(routing_key="short", url=rec.url), client).send(MSG, "k")
        assert not res.ok and not res.retryable and res.status == 400 and "routing_key" in res.error
    finally:
        rec.close()


def test_backoff_grows_with_jitter_and_is_capped():
    st = OutboxSettings(backoff_base_s=1, backoff_max_s=60)
    waits = [backoff_s(n, st) for n in range(1, 12)]
    assert 1 <= waits[0] <= 2 and 2 <= waits[1] <= 3 and 4 <= waits[2] <= 5
    assert max(waits) <= 60 and waits[-1] == 60
    assert len({round(backoff_s(3, st), 6) for _ in range(5)}) > 1      # jitter
    assert backoff_s(10_000, st) == 60                                  # no overflow on absurd attempt counts


def test_rate_limited_delivery_honours_retry_after(client):
    """Slack and PagerDuty answer 429 with Retry-After; the next attempt waits at least that long."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    import threading

    class H(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(429)
            self.send_header("Retry-After", "30")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        res = WebhookNotifier(WebhookConfig(url=f"http://127.0.0.1:{srv.server_port}/h"), client).send(MSG, "k")
    finally:
        srv.shutdown()
        srv.server_close()
    assert not res.ok and res.retryable and res.status == 429 and res.retry_after_s == 30


def test_outbox_waits_at_least_retry_after(tmp_path):
    """A real SQLite outbox: a 429 with Retry-After 30 s schedules the next attempt 30 s later, not after 1 s."""
    from dcops.alarm_types import DeliveryStatus, IncidentAction, Notification
    from dcops.alerts.notification.notifiers.base import DeliveryResult
    from dcops.alerts.notification.outbox import OutboxSender
    from dcops.alerts.storage.tables import open_engine
    from dcops.alerts.storage.alerter_store import AlerterStore, CycleWrite

    class RateLimited:
        def send(self, message, key):
            return DeliveryResult(False, retryable=True, status=429, error="HTTP 429", retry_after_s=30.0)

    store = AlerterStore(open_engine(f"sqlite:///{tmp_path}/o.sqlite"))
    w = CycleWrite()
    w.notifications.append(Notification(id="n1", idempotency_key="k1", receiver="r", notifier="webhook",
                                        action=IncidentAction.TRIGGER, incident_id=None,
                                        status=DeliveryStatus.PENDING, created_ns=0, payload={}))
    store.write(w, 1_000 * 10**9)
    sender = OutboxSender(store, {"r": RateLimited()}, OutboxSettings(backoff_base_s=1), clock=lambda: 1_000.0)
    assert sender.deliver_due() == 0
    assert store.due(1_029 * 10**9) == []                     # exponential backoff alone would retry at ~1,001 s
    assert [n.id for n in store.due(1_030 * 10**9)] == ["n1"]
