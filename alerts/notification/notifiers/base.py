"""What every notifier shares: the delivery result, HTTP status classification, the message.

A notifier turns the generic notification message (the outbox payload, see `message()`) into
one request to one receiver and says whether it was delivered, should be retried, or failed
for good. Notifiers never retry themselves: the outbox does, durably.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping, Protocol

import httpx
from pydantic import BaseModel, ConfigDict

from dcops.secrets import redact

__all__ = ["DeliveryResult", "Notifier", "NotifierConfig", "classify_http", "iso_time", "links_of", "post_json",
           "summary_of"]


class NotifierConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)  # inputs may be secrets


@dataclass(frozen=True)
class DeliveryResult:
    ok: bool
    retryable: bool = False
    status: int | None = None
    error: str = ""
    retry_after_s: float = 0.0  # the receiver's Retry-After (Slack and PagerDuty send it with 429)


class Notifier(Protocol):
    config_model: type[NotifierConfig]

    def send(self, message: Mapping[str, Any], idempotency_key: str) -> DeliveryResult: ...


def _retry_after(value: str | None) -> float:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); 0 when absent or unreadable."""
    if not value:
        return 0.0
    try:
        return max(0.0, min(float(value), 3600.0))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        return max(0.0, min((parsedate_to_datetime(value) - datetime.now(timezone.utc)).total_seconds(), 3600.0))
    except (TypeError, ValueError):
        return 0.0


def classify_http(status: int, body: str = "", retry_after: str | None = None) -> DeliveryResult:
    if 200 <= status < 300:
        return DeliveryResult(True, status=status)
    retry = status in (408, 425, 429) or status >= 500
    return DeliveryResult(False, retryable=retry, status=status, error=redact(f"HTTP {status}: {body[:200]}"),
                          retry_after_s=_retry_after(retry_after) if retry else 0.0)


def post_json(client: httpx.Client, url: str, body: bytes, headers: Mapping[str, str], timeout_s: float) -> DeliveryResult:
    try:
        r = client.post(url, content=body, headers={"Content-Type": "application/json", **headers}, timeout=timeout_s)
    except httpx.HTTPError as exc:
        return DeliveryResult(False, retryable=True, error=redact(f"{type(exc).__name__}: {exc}")[:300])
    return classify_http(r.status_code, r.text, r.headers.get("Retry-After"))


def summary_of(message: Mapping[str, Any]) -> str:
    inc = message.get("incident") or {}
    action = message.get("action", "trigger")
    head = {"trigger": "", "acknowledge": "[ACK] ", "resolve": "[RESOLVED] "}.get(action, "")
    return f"{head}[{str(inc.get('severity', '')).upper()}] {inc.get('title', '')}"[:1000]


def iso_time(ns: Any) -> str:
    """Nanoseconds since the epoch as ISO 8601 UTC (`2026-11-28T10:00:00.000Z`); "" when unknown."""
    try:
        t = datetime.fromtimestamp(int(ns) / 1e9, tz=timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        return ""
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def links_of(message: Mapping[str, Any]) -> list[dict[str, str]]:
    """The message's links ({href, text}): the incident in the console first, then the sources."""
    return [dict(href=str(x["href"]), text=str(x.get("text") or x["href"])) for x in message.get("links") or []
            if isinstance(x, Mapping) and str(x.get("href", "")).startswith(("http://", "https://"))]
