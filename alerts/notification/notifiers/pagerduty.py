"""PagerDuty Events API v2: trigger, acknowledge and resolve, one dedup_key per incident.

Contract (https://developer.pagerduty.com/docs/events-api-v2/trigger-events/): POST JSON to
`/v2/enqueue`; `routing_key`, `event_action` (trigger|acknowledge|resolve) and `dedup_key`
(<= 255 chars) always; for trigger also `payload{summary (<= 1024), source, severity
(critical|error|warning|info), timestamp (ISO 8601), component, group, class, custom_details}`,
`links[{href, text}]`, `client`, `client_url`. 202 is accepted; 429 and 5xx are retried, other
4xx (bad routing key, bad body) are permanent. custom_details is what the responder reads in the
PagerDuty UI and the mobile app, so it holds readable strings (ISO times, "component: problem"),
never raw nanosecond integers.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

import httpx
from pydantic import Field, HttpUrl

from dcops.alerts.notification.notifiers.base import (DeliveryResult, NotifierConfig, iso_time, links_of, post_json,
                                                      summary_of)
from dcops.secrets import Secret

__all__ = ["PagerDutyConfig", "PagerDutyNotifier", "pagerduty_body", "PD_SEVERITY"]

# X.733 perceived severity -> PagerDuty severity
PD_SEVERITY = {"critical": "critical", "major": "error", "minor": "warning", "warning": "warning",
               "indeterminate": "info", "cleared": "info"}


class PagerDutyConfig(NotifierConfig):
    routing_key: Secret = Field(description="Integration (routing) key: literal, env:NAME or file:PATH.")
    url: HttpUrl = HttpUrl("https://events.pagerduty.com/v2/enqueue")
    timeout_s: float = Field(10.0, gt=0)


def _alarm_line(a: Mapping[str, Any]) -> str:
    when = iso_time(a.get("raised_ns"))
    return (f"{str(a.get('severity', '')).upper()} {a.get('component') or a.get('managed_object', '')}: "
            f"{a.get('specific_problem', '')} ({a.get('probable_cause', '')}){', raised ' + when if when else ''}")[:300]


def _details(message: Mapping[str, Any]) -> dict:
    inc = message.get("incident") or {}
    root = message.get("root_alarm") or {}
    d: dict[str, Any] = {
        "incident": str(inc.get("id", "")), "title": str(inc.get("title", "")), "site": str(message.get("site", "")),
        "state": str(inc.get("state", "")), "opened": iso_time(inc.get("opened_ns")),
        "symptoms": int(message.get("symptom_count", 0) or 0),
    }
    if root:
        d["root cause"] = _alarm_line(root)
        d["managed object"] = str(root.get("managed_object", ""))
        if root.get("proposed_repair_actions"):
            d["repair actions"] = [str(x) for x in root["proposed_repair_actions"]][:10]
    alarms = [_alarm_line(a) for a in (message.get("alarms") or [])[:20] if not a.get("root_cause")]
    if alarms:
        d["alarms"] = alarms
    if message.get("escalation_level"):
        d["escalation level"] = str(message["escalation_level"])
    if message.get("oncall"):
        d["on call"] = str(message["oncall"])
    labels = inc.get("labels") or {}
    d["labels"] = {str(k): str(v) for k, v in labels.items() if k not in ("epoch", "notified")}
    return d


def pagerduty_body(message: Mapping[str, Any], routing_key: str) -> dict:
    inc = message.get("incident") or {}
    action = message.get("action", "trigger")
    body: dict = {"routing_key": routing_key, "event_action": action, "dedup_key": f"dcops-{inc.get('id', '')}"[:255]}
    if action == "trigger":
        root = message.get("root_alarm") or {}
        labels = inc.get("labels") or {}
        body["payload"] = {
            "summary": summary_of(message)[:1024] or "dcops incident",
            "source": str(root.get("managed_object") or inc.get("root_component") or message.get("site") or "dcops")[:255],
            "severity": PD_SEVERITY.get(str(inc.get("severity", "")), "error"),
            "timestamp": iso_time(inc.get("opened_ns") or root.get("raised_ns")) or None,
            "component": str(inc.get("root_component") or "")[:255],
            "group": str(labels.get("hall") or labels.get("site") or message.get("site") or "")[:255],
            "class": str(root.get("probable_cause", ""))[:255],
            "custom_details": _details(message),
        }
        if body["payload"]["timestamp"] is None:
            del body["payload"]["timestamp"]
        links = links_of(message)
        if links:
            body["links"] = links[:10]
            body["client_url"] = links[0]["href"]
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
