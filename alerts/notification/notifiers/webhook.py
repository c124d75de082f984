"""Generic webhook: the notification message as JSON, signed with HMAC-SHA256.

Headers:
- `Idempotency-Key`: the outbox key; a receiver that sees a key twice must treat the second
  as a repeat (the outbox delivers at least once).
- `X-Dcops-Timestamp`: unix seconds when this attempt was signed.
- `X-Dcops-Signature`: `t=<timestamp>,v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
  Receivers recompute it and reject timestamps older than a few minutes (replay protection);
  `verify_signature` does exactly that.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any, Callable, Mapping

import httpx
from pydantic import Field, HttpUrl, SecretStr

from dcops.alerts.notification.notifiers.base import DeliveryResult, NotifierConfig, post_json

__all__ = ["WebhookConfig", "WebhookNotifier", "sign", "verify_signature", "SIGNATURE_HEADER", "TIMESTAMP_HEADER"]

SIGNATURE_HEADER = "X-Dcops-Signature"
TIMESTAMP_HEADER = "X-Dcops-Timestamp"


class WebhookConfig(NotifierConfig):
    url: HttpUrl
    secret: SecretStr | None = Field(None, description="HMAC-SHA256 key; unsigned when absent.")
    timeout_s: float = Field(10.0, gt=0)
    headers: dict[str, str] = Field(default_factory=dict)


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(secret: bytes, header: str, body: bytes, now_s: float | None = None, tolerance_s: float = 300.0) -> bool:
    """True when `header` is a valid signature of `body` made within `tolerance_s`."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        ts = int(parts["t"])
        given = parts["v1"]
    except (ValueError, KeyError):
        return False
    now_s = time.time() if now_s is None else now_s
    if abs(now_s - ts) > tolerance_s:
        return False
    expected = sign(secret, ts, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, given)


class WebhookNotifier:
    config_model = WebhookConfig

    def __init__(self, config: WebhookConfig, client: httpx.Client, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.client = client
        self.clock = clock

    def send(self, message: Mapping[str, Any], idempotency_key: str) -> DeliveryResult:
        body = json.dumps(message, separators=(",", ":"), sort_keys=True, default=str).encode()
        headers = dict(self.config.headers)
        headers["Idempotency-Key"] = idempotency_key
        if self.config.secret is not None:
            ts = int(self.clock())
            headers[TIMESTAMP_HEADER] = str(ts)
            headers[SIGNATURE_HEADER] = sign(self.config.secret.get_secret_value().encode(), ts, body)
        return post_json(self.client, str(self.config.url), body, headers, self.config.timeout_s)
