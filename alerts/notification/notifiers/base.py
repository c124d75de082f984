"""What every notifier shares: the delivery result, HTTP status classification, the message.

A notifier turns the generic notification message (the outbox payload, see `message()`) into
one request to one receiver and says whether it was delivered, should be retried, or failed
for good. Notifiers never retry themselves: the outbox does, durably.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Protocol

import httpx
from pydantic import BaseModel, ConfigDict

__all__ = ["DeliveryResult", "Notifier", "NotifierConfig", "classify_http", "post_json", "summary_of"]


class NotifierConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class DeliveryResult:
    ok: bool
    retryable: bool = False
    status: int | None = None
    error: str = ""


class Notifier(Protocol):
    config_model: type[NotifierConfig]

    def send(self, message: Mapping[str, Any], idempotency_key: str) -> DeliveryResult: ...


def classify_http(status: int, body: str = "") -> DeliveryResult:
    if 200 <= status < 300:
        return DeliveryResult(True, status=status)
    retry = status in (408, 425, 429) or status >= 500
    return DeliveryResult(False, retryable=retry, status=status, error=f"HTTP {status}: {body[:200]}")


def post_json(client: httpx.Client, url: str, body: bytes, headers: Mapping[str, str], timeout_s: float) -> DeliveryResult:
    try:
        r = client.post(url, content=body, headers={"Content-Type": "application/json", **headers}, timeout=timeout_s)
    except httpx.HTTPError as exc:
        return DeliveryResult(False, retryable=True, error=f"{type(exc).__name__}: {exc}"[:300])
    return classify_http(r.status_code, r.text)


def summary_of(message: Mapping[str, Any]) -> str:
    inc = message.get("incident") or {}
    action = message.get("action", "trigger")
    head = {"trigger": "", "acknowledge": "[ACK] ", "resolve": "[RESOLVED] "}.get(action, "")
    return f"{head}[{str(inc.get('severity', '')).upper()}] {inc.get('title', '')}"[:1000]
