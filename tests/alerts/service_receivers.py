"""Loopback stand-ins for Slack and PagerDuty that check what the real services check, and
answer as they do (Slack: 200 `ok` / 400 `invalid_blocks`...; PagerDuty Events v2: 202 / 400
`{"status": "invalid event", "errors": [...]}`). What they cannot check is listed in
/work/notes/integrations.md (workspace permissions, real rendering, rate limits)."""

from __future__ import annotations

import json
import re
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

_ENTITY = re.compile(r"&(?!amp;|lt;|gt;)")


def _is_url(v) -> bool:
    p = urlsplit(str(v))
    return p.scheme in ("http", "https") and bool(p.netloc)


def slack_problems(body) -> list[str]:
    """Block Kit and mrkdwn checks Slack makes (or that decide whether a message is safe)."""
    out: list[str] = []
    if not isinstance(body, dict):
        return ["invalid_payload"]
    if "channel" in body:
        out.append("channel_not_allowed_for_app_webhook")
    if not isinstance(body.get("text"), str) or not body["text"].strip():
        out.append("no_text")
    blocks = list(body.get("blocks") or [])
    for att in body.get("attachments") or []:
        if not re.fullmatch(r"#[0-9a-fA-F]{6}|good|warning|danger", str(att.get("color", "#000000"))):
            out.append("invalid_attachments: color")
        blocks += att.get("blocks") or []
    if len(blocks) > 50:
        out.append("invalid_blocks: more than 50")
    mrkdwn = [body.get("text", "")]

    def text_obj(t, kind, limit, where):
        if not isinstance(t, dict) or t.get("type") not in kind or not isinstance(t.get("text"), str) or not t["text"]:
            out.append(f"invalid_blocks: {where} text")
            return
        if len(t["text"]) > limit:
            out.append(f"invalid_blocks: {where} longer than {limit}")
        mrkdwn.append(t["text"])  # Slack's wire format escapes & < > in plain_text too

    for i, b in enumerate(blocks):
        kind = b.get("type")
        if kind == "header":
            text_obj(b.get("text"), ("plain_text",), 150, f"blocks.{i}.header")
        elif kind == "section":
            if "text" not in b and "fields" not in b:
                out.append(f"invalid_blocks: blocks.{i} section needs text or fields")
            if "text" in b:
                text_obj(b["text"], ("plain_text", "mrkdwn"), 3000, f"blocks.{i}.section")
            for j, f in enumerate(b.get("fields") or []):
                text_obj(f, ("plain_text", "mrkdwn"), 2000, f"blocks.{i}.fields.{j}")
            if len(b.get("fields") or []) > 10:
                out.append(f"invalid_blocks: blocks.{i} more than 10 fields")
        elif kind == "actions":
            els = b.get("elements") or []
            if not 1 <= len(els) <= 25:
                out.append(f"invalid_blocks: blocks.{i} actions elements")
            for j, e in enumerate(els):
                text_obj(e.get("text"), ("plain_text",), 75, f"blocks.{i}.elements.{j}")
                if "url" in e and (not _is_url(e["url"]) or len(e["url"]) > 3000):
                    out.append(f"invalid_blocks: blocks.{i}.elements.{j}.url")
        elif kind not in ("context", "divider"):
            out.append(f"invalid_blocks: blocks.{i} unknown type {kind!r}")
    for t in mrkdwn:  # control sequences: a mention, a channel ping or a link the sender did not intend
        if "<" in t or ">" in t:
            out.append(f"unescaped_control: {t[:80]!r}")
        if _ENTITY.search(t):
            out.append(f"unescaped_ampersand: {t[:80]!r}")
    return out


def pagerduty_problems(body) -> list[str]:
    """Events API v2 validation (developer.pagerduty.com/docs/events-api-v2/trigger-events)."""
    out: list[str] = []
    if not isinstance(body, dict):
        return ["Event object is invalid"]
    if not re.fullmatch(r"[A-Za-z0-9]{32}", str(body.get("routing_key", ""))):
        out.append("'routing_key' is invalid (32 characters)")
    action = body.get("event_action")
    if action not in ("trigger", "acknowledge", "resolve"):
        out.append("'event_action' is invalid")
    dk = body.get("dedup_key")
    if action in ("acknowledge", "resolve") and not dk:
        out.append("'dedup_key' is required")
    if dk is not None and (not isinstance(dk, str) or len(dk) > 255):
        out.append("'dedup_key' is invalid")
    if action != "trigger":
        return out
    p = body.get("payload")
    if not isinstance(p, dict):
        return out + ["'payload' is missing or invalid"]
    if not isinstance(p.get("summary"), str) or not 1 <= len(p["summary"]) <= 1024:
        out.append("'payload.summary' is invalid")
    if not isinstance(p.get("source"), str) or not p["source"]:
        out.append("'payload.source' is missing")
    if p.get("severity") not in ("critical", "error", "warning", "info"):
        out.append("'payload.severity' is invalid")
    if "timestamp" in p:
        try:
            ts = datetime.fromisoformat(str(p["timestamp"]).replace("Z", "+00:00"))
            if ts.tzinfo is None:
                out.append("'payload.timestamp' has no time zone")
        except ValueError:
            out.append("'payload.timestamp' is not ISO 8601")
    for k in ("component", "group", "class"):
        if k in p and not isinstance(p[k], str):
            out.append(f"'payload.{k}' must be a string")
    if "custom_details" in p and not isinstance(p["custom_details"], (dict, str)):
        out.append("'payload.custom_details' is invalid")
    for i, link in enumerate(body.get("links") or []):
        if not isinstance(link, dict) or not _is_url(link.get("href")):
            out.append(f"'links[{i}].href' is invalid")
    if "client_url" in body and not _is_url(body["client_url"]):
        out.append("'client_url' is invalid")
    return out


class ServiceReceiver:
    """`kind` is "slack" or "pagerduty"; `requests` keeps (headers, body) of every POST."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.requests: list[tuple[dict, object]] = []
        self.refusals: list[list[str]] = []
        me = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                if not self.headers.get("Content-Type", "").startswith("application/json"):
                    problems = ["invalid content type"]
                else:
                    problems = slack_problems(body) if me.kind == "slack" else pagerduty_problems(body)
                me.requests.append((dict(self.headers), body))
                if problems:
                    me.refusals.append(problems)
                if me.kind == "slack":
                    status, reply = (400, problems[0].encode()) if problems else (200, b"ok")
                else:
                    status = 400 if problems else 202
                    reply = json.dumps({"status": "invalid event", "message": "Event object is invalid",
                                        "errors": problems} if problems else
                                       {"status": "success", "message": "Event processed",
                                        "dedup_key": (body or {}).get("dedup_key")}).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        path = "/services/T0ABC/B0DEF/s3cr3tWebhookToken" if kind == "slack" else "/v2/enqueue"
        self.url = f"http://127.0.0.1:{self.server.server_port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
