"""Slack incoming webhook (app webhooks): a message a person on call can act on.

Contract (https://api.slack.com/messaging/webhooks, /reference/surfaces/formatting):
- `text` is the notification fallback; `blocks` (here inside one `attachments` entry, the only
  way to get the severity colour bar) carry the layout. App webhooks post to the channel they
  were created for and ignore `channel`, so none is sent (the config's `channel` is a label
  for operators only).
- mrkdwn treats `&`, `<` and `>` as control characters: `<!channel>` pings everyone and
  `<http://x|click>` renders a link. Every piece of alarm text (mrkdwn and plain_text) is
  escaped (`&amp; &lt; &gt;`),
  so an alert summary can never ping a channel or inject a link; only the links dcops builds
  itself (console, generator, runbook) are real links, and they are buttons.
- Limits: header text 150 characters (plain_text), section text 3000, button URL 3000.
The webhook URL is the secret (`env:`/`file:` references work); it is never logged.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

import httpx
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from dcops.alerts.notification.notifiers.base import (DeliveryResult, NotifierConfig, iso_time, links_of, post_json,
                                                      summary_of)
from dcops.secrets import Secret

__all__ = ["SlackConfig", "SlackNotifier", "slack_body", "escape_mrkdwn", "SEVERITY_COLOUR"]

SEVERITY_COLOUR = {"critical": "#d0021b", "major": "#f5740f", "minor": "#f8c21c", "warning": "#f8e71c",
                   "indeterminate": "#9b9b9b", "cleared": "#2eb67d"}
_ACTION_COLOUR = {"resolve": "#2eb67d", "acknowledge": "#4a90d9"}


class SlackConfig(NotifierConfig):
    url: Secret = Field(description="The incoming-webhook URL (it is the secret): literal, env:NAME or file:PATH.")
    channel: str | None = Field(None, description="The channel the app webhook posts to, shown to operators; "
                                                  "never sent (app webhooks ignore it).")
    timeout_s: float = Field(10.0, gt=0)

    @field_validator("url")
    @classmethod
    def _url(cls, v):
        parts = urlsplit(v.get_secret_value())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) incoming-webhook URL (the value is not shown: it is a secret)")
        return v


def escape_mrkdwn(text: Any, limit: int = 3000) -> str:
    s = str(text if text is not None else "")[:limit]
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _plain(text: Any, limit: int) -> str:
    """plain_text is not parsed for mentions, but Slack's wire format escapes & < > in every text field."""
    s = " ".join(str(text or "").split())
    s = s if len(s) <= limit else s[: limit - 1] + "…"
    out = escape_mrkdwn(s, 10 * limit)
    while len(out) > limit:  # escaping made it longer: cut before an entity, never inside one
        s = s[:-2] + "…"
        out = escape_mrkdwn(s, 10 * limit)
    return out


def slack_body(message: Mapping[str, Any]) -> dict:
    inc = message.get("incident") or {}
    root = message.get("root_alarm") or {}
    action = str(message.get("action", "trigger"))
    sev = str(inc.get("severity", ""))
    e = escape_mrkdwn
    fields = [f"*Severity*\n{e(sev.upper() or '?')}", f"*Site*\n{e(message.get('site', ''))}"]
    if inc.get("opened_ns"):
        fields.append(f"*Opened*\n{e(iso_time(inc['opened_ns']))}")
    if message.get("oncall"):
        fields.append(f"*On call*\n{e(message['oncall'])}")
    lines = []
    if root:
        lines.append(f"*Root cause:* `{e(root.get('component') or root.get('managed_object', ''), 200)}` "
                     f"{e(root.get('specific_problem', ''), 500)} ({e(root.get('probable_cause', ''), 100)})")
        for act in (root.get("proposed_repair_actions") or [])[:5]:
            lines.append(f"• {e(act, 300)}")
    if message.get("symptom_count"):
        lines.append(f"{int(message['symptom_count'])} correlated alarm(s) downstream")
    if message.get("escalation_level"):
        lines.append(f"Escalation level {e(message['escalation_level'], 20)}")
    blocks: list[dict] = [
        {"type": "header", "text": {"type": "plain_text", "text": _plain(summary_of(message), 150), "emoji": False}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f[:2000]} for f in fields]},
    ]
    if lines:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:3000]}})
    links = [x for x in links_of(message) if len(x["href"]) <= 3000][:5]
    if links:
        blocks.append({"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": _plain(x["text"], 75)}, "url": x["href"],
             **({"style": "primary"} if i == 0 and action == "trigger" else {})} for i, x in enumerate(links)]})
    colour = _ACTION_COLOUR.get(action, SEVERITY_COLOUR.get(sev, "#9b9b9b"))
    return {"text": e(summary_of(message), 1000), "attachments": [{"color": colour, "blocks": blocks}],
            "unfurl_links": False, "unfurl_media": False,
            "metadata": {"event_type": "dcops_incident", "event_payload": {"incident_id": str(inc.get("id", ""))}}}


class SlackNotifier:
    config_model = SlackConfig

    def __init__(self, config: SlackConfig, client: httpx.Client) -> None:
        self.config = config
        self.client = client

    def send(self, message: Mapping[str, Any], idempotency_key: str) -> DeliveryResult:
        body = json.dumps(slack_body(message), separators=(",", ":")).encode()
        return post_json(self.client, self.config.url.get_secret_value(), body, {"Idempotency-Key": idempotency_key},
                         self.config.timeout_s)
