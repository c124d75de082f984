"""Slack incoming webhook: a short text plus a section per root cause and symptom count."""

from __future__ import annotations

import json
from typing import Any, Mapping

import httpx
from pydantic import Field, HttpUrl, SecretStr

from dcops.alerts.notification.notifiers.base import DeliveryResult, NotifierConfig, post_json, summary_of

__all__ = ["SlackConfig", "SlackNotifier", "slack_body"]


class SlackConfig(NotifierConfig):
    url: SecretStr = Field(description="The incoming-webhook URL (it is the secret).")
    channel: str | None = None
    timeout_s: float = Field(10.0, gt=0)


def slack_body(message: Mapping[str, Any], channel: str | None = None) -> dict:
    inc = message.get("incident") or {}
    root = message.get("root_alarm") or {}
    lines = [f"*{summary_of(message)}*"]
    if root:
        lines.append(f"Root cause: `{root.get('managed_object', '')}` {root.get('specific_problem', '')}")
    if message.get("symptom_count"):
        lines.append(f"{message['symptom_count']} correlated alarm(s) downstream")
    if message.get("oncall"):
        lines.append(f"On call: {message['oncall']}")
    text = "\n".join(lines)
    body: dict = {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
                  "metadata": {"event_type": "dcops_incident", "event_payload": {"incident_id": inc.get("id", "")}}}
    if channel:
        body["channel"] = channel
    return body


class SlackNotifier:
    config_model = SlackConfig

    def __init__(self, config: SlackConfig, client: httpx.Client) -> None:
        self.config = config
        self.client = client
        HttpUrl(config.url.get_secret_value())  # validate without echoing the secret later

    def send(self, message: Mapping[str, Any], idempotency_key: str) -> DeliveryResult:
        body = json.dumps(slack_body(message, self.config.channel), separators=(",", ":")).encode()
        return post_json(self.client, self.config.url.get_secret_value(), body, {"Idempotency-Key": idempotency_key},
                         self.config.timeout_s)
