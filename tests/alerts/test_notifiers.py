"""Notifiers against real loopback servers: webhook (signed), Slack, PagerDuty, SMTP e-mail."""

from __future__ import annotations

import json
import socket
import threading

import httpx
import pytest

from dcops.alerts.config import OutboxSettings
from dcops.alerts.notification.notifiers import NOTIFIERS
from dcops.alerts.notification.notifiers.email import EmailConfig, EmailNotifier
from dcops.alerts.notification.notifiers.pagerduty import PagerDutyConfig, PagerDutyNotifier, pagerduty_body
from dcops.alerts.notification.notifiers.slack import SlackConfig, SlackNotifier
from dcops.alerts.notification.notifiers.webhook import WebhookConfig, WebhookNotifier, sign, verify_signature
from dcops.alerts.notification.outbox import backoff_s
from tests.alerts.helpers import Receiver

MSG = {"action": "trigger", "incident": {"id": "abc", "title": "CRAC-1 stopped", "severity": "major",
                                         "root_component": "CRAC-1", "labels": {"hall": "H1"}},
       "root_alarm": {"managed_object": "test/H1/CRAC-1", "probable_cause": "heatingVentCoolingSystemProblem",
                      "specific_problem": "stopped", "proposed_repair_actions": ["restart it"]},
       "symptom_count": 3, "alarms": []}


def test_registry():
    assert set(NOTIFIERS) == {"webhook", "slack", "pagerduty", "email"}


def test_signature_roundtrip_and_replay_window():
    body = b'{"a":1}'
    h = sign(b"k", 1000, body)
    assert verify_signature(b"k", h, body, now_s=1100)
    assert not verify_signature(b"k", h, body, now_s=1000 + 301)       # replayed too late
    assert not verify_signature(b"k", h, body + b" ", now_s=1100)      # tampered
    assert not verify_signature(b"other", h, body, now_s=1100)
    assert not verify_signature(b"k", "garbage", body, now_s=1100)


@pytest.fixture
def client():
    with httpx.Client() as c:
        yield c


def test_webhook_sends_signed_json_with_idempotency_key(client):
    rec = Receiver(secret=b"topsecret")
    try:
        n = WebhookNotifier(WebhookConfig(url=rec.url, secret="topsecret"), client)
        res = n.send(MSG, "key-1")
        assert res.ok and res.status == 200
        assert rec.accepted == {"key-1": 1} and rec.bodies["key-1"]["incident"]["id"] == "abc"
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


class _Capture:
    """A loopback HTTP server answering a fixed status, keeping request bodies and headers."""

    def __init__(self, status: int):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        cap = self
        self.requests: list[tuple[dict, dict]] = []

        class H(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                cap.requests.append((dict(self.headers), json.loads(body)))
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *a):
                pass
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/v2/enqueue"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_pagerduty_trigger_ack_resolve_share_a_dedup_key(client):
    cap = _Capture(202)
    try:
        pd = PagerDutyNotifier(PagerDutyConfig(routing_key="R0UT1NG", url=cap.url), client)
        for action in ("trigger", "acknowledge", "resolve"):
            assert pd.send({**MSG, "action": action}, f"abc:{action}").ok
        bodies = [b for _, b in cap.requests]
        assert [b["event_action"] for b in bodies] == ["trigger", "acknowledge", "resolve"]
        assert {b["dedup_key"] for b in bodies} == {"dcops-abc"}
        assert bodies[0]["payload"]["severity"] == "error" and bodies[0]["payload"]["source"] == "test/H1/CRAC-1"
        assert "payload" not in bodies[1]
        assert cap.requests[0][0]["Idempotency-Key"] == "abc:trigger"
    finally:
        cap.close()
    assert pagerduty_body({**MSG, "incident": {**MSG["incident"], "severity": "critical"}}, "k")["payload"]["severity"] == "critical"


def test_pagerduty_bad_request_is_permanent(client):
    cap = _Capture(400)
    try:
        res = PagerDutyNotifier(PagerDutyConfig(routing_key="x", url=cap.url), client).send(MSG, "k")
        assert not res.ok and not res.retryable and res.status == 400
    finally:
        cap.close()


def test_slack_incoming_webhook(client):
    cap = _Capture(200)
    try:
        assert SlackNotifier(SlackConfig(url=cap.url, channel="#noc"), client).send(MSG, "k").ok
        body = cap.requests[0][1]
        assert "CRAC-1 stopped" in body["text"] and "3 correlated" in body["text"] and body["channel"] == "#noc"
    finally:
        cap.close()


class _Smtp:
    """A minimal SMTP server on loopback (enough of RFC 5321 for smtplib.send_message)."""

    def __init__(self, reject: bool = False):
        self.messages: list[bytes] = []
        self.reject = reject
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn, conn.makefile("rb") as rf:
                conn.sendall(b"220 test ESMTP\r\n")
                data = None
                for line in rf:
                    if data is not None:
                        if line == b".\r\n":
                            self.messages.append(b"".join(data))
                            data = None
                            conn.sendall(b"250 queued\r\n")
                        else:
                            data.append(line)
                        continue
                    cmd = line[:4].upper()
                    if cmd in (b"EHLO", b"HELO"):
                        conn.sendall(b"250 test\r\n")
                    elif cmd == b"MAIL" and self.reject:
                        conn.sendall(b"451 try later\r\n")
                    elif cmd == b"DATA":
                        data = []
                        conn.sendall(b"354 go\r\n")
                    elif cmd == b"QUIT":
                        conn.sendall(b"221 bye\r\n")
                        break
                    else:
                        conn.sendall(b"250 ok\r\n")

    def close(self):
        self.sock.close()


def test_email_over_smtp():
    srv = _Smtp()
    try:
        n = EmailNotifier(EmailConfig(host="127.0.0.1", port=srv.port, sender="dcops@example.org", to=("noc@example.org",)))
        assert n.send(MSG, "abc.0:mail:trigger").ok
        assert len(srv.messages) == 1
        text = srv.messages[0].decode()
        assert "Subject: [MAJOR] CRAC-1 stopped" in text and "Message-ID: <abc.0-mail-trigger@dcops>" in text
        assert "restart it" in text
    finally:
        srv.close()
    srv = _Smtp(reject=True)
    try:
        res = EmailNotifier(EmailConfig(port=srv.port, sender="a@b.c", to=("x@y.z",))).send(MSG, "k")
        assert not res.ok and res.retryable and res.status == 451
    finally:
        srv.close()


def test_backoff_grows_with_jitter_and_is_capped():
    st = OutboxSettings(backoff_base_s=1, backoff_max_s=60)
    waits = [backoff_s(n, st) for n in range(1, 12)]
    assert 1 <= waits[0] <= 2 and 2 <= waits[1] <= 3 and 4 <= waits[2] <= 5
    assert max(waits) <= 60 and waits[-1] == 60
    assert len({round(backoff_s(3, st), 6) for _ in range(5)}) > 1      # jitter
