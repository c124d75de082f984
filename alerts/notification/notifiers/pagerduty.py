"""PagerDuty Events API v2: trigger, acknowledge and resolve, one dedup_key per incident.

https://developer.pagerduty.com/docs/events-api-v2/trigger-events/ : POST
`{routing_key, event_action, dedup_key, payload{summary, source, severity, component, group,
class, custom_details}}` to /v2/enqueue; 202 accepted, 429 and 5xx retry, other 4xx are
permanent (bad routing key or body).
"""

from __future__ import annotations

import json
from typing import Any, Mapping

import httpx
from pydantic import Field, HttpUrl, SecretStr

from dcops.alerts.notification.notifiers.base import DeliveryResult, NotifierConfig, post_json, summary_of

__all__ = ["PagerDutyConfig", "PagerDutyNotifier", "pagerduty_body", "PD_SEVERITY"]

# X.733 perceived severity -> PagerDuty severity
PD_SEVERITY = {"critical": "critical", "major": "error", "minor": "warning", "warning": "warning",
               "indeterminate": "info", "cleared": "info"}


class PagerDutyConfig(NotifierConfig):
    routing_key: SecretStr
    url: HttpUrl = HttpUrl("https://events.pagerduty.com/v2/enqueue")
    timeout_s: float = Field(10.0, gt=0)


def pagerduty_body(message: Mapping[str, Any], routing_key: str) -> dict:
    inc = message.get("incident") or {}
    action = message.get("action", "trigger")
    body: dict = {"routing_key": routing_key, "event_action": action, "dedup_key": f"dcops-{inc.get('id', '')}"}
    if action == "trigger":
        root = message.get("root_alarm") or {}
        body["payload"] = {
            "summary": summary_of(message),
            "source": str(root.get("managed_object") or inc.get("root_component") or message.get("site", "dcops")),
            "severity": PD_SEVERITY.get(str(inc.get("severity", "")), "error"),
            "component": str(inc.get("root_component") or ""),
            "group": str((inc.get("labels") or {}).get("hall", "")),
            "class": str(root.get("probable_cause", "")),
            "custom_details": {"incident": inc, "symptom_count": message.get("symptom_count", 0),
                               "alarms": message.get("alarms", [])[:20]},
        }
        body["client"] = "dcops"
    return body


class PagerDutyNotifier:
    config_model = PagerDutyConfig

    def __init__(self, config: PagerDutyConfig, client: httpx.Client) -> None:
        self.config = config
        self.client = client

    def send(self, message: Mapping[str, Any], idempotency_key: str) -> DeliveryResult:
        body = json.dumps(pagerduty_body(message, self.config.routing_key.get_secret_value()), separators=(",", ":"),
                          default=str).encode()
        return post_json(self.client, str(self.config.url), body, {"Idempotency-Key": idempotency_key}, self.config.timeout_s)
