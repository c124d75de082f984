"""Generic webhook: the notification message as JSON, signed per the Standard Webhooks spec.

https://www.standardwebhooks.com/ (spec/standard-webhooks.md): every request carries
- `webhook-id`: the message id, the same on every retry (the outbox's idempotency key), so a
  receiver that sees an id twice treats the second as a repeat (delivery is at least once);
  `Idempotency-Key` carries the same value for receivers that look for that;
- `webhook-timestamp`: unix seconds of this attempt (receivers refuse ones older than ~5 min);
- `webhook-signature`: space-separated `v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`,
  one per configured key, so a key can be rotated without a gap: add the new key to `secrets`,
  update the receiver, then drop the old one.
Keys are `whsec_<base64>` (the spec's form, as the receivers' libraries expect) or any other
string, used as its UTF-8 bytes; `env:NAME` / `file:PATH` references work. Signing uses the
`standardwebhooks` reference library; `verify` is the receiving side (tests, the demo pager).
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

import httpx
from pydantic import Field, HttpUrl, model_validator
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from dcops.alerts.notification.notifiers.base import DeliveryResult, NotifierConfig, post_json
from dcops.secrets import Secret

__all__ = ["WebhookConfig", "WebhookNotifier", "signature_headers", "verify", "ID_HEADER", "TIMESTAMP_HEADER",
           "SIGNATURE_HEADER"]

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"


class WebhookConfig(NotifierConfig):
    url: HttpUrl
    secret: Secret | None = Field(None, description="Signing key (whsec_<base64> or text); unsigned when absent.")
    secrets: tuple[Secret, ...] = Field((), description="Several signing keys at once, for key rotation.")
    timeout_s: float = Field(10.0, gt=0)
    headers: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _keys(self):
        for s in self.keys():
            _webhook(s)  # a bad whsec_ value fails here, at config load
        return self

    def keys(self) -> tuple[str, ...]:
        out = [self.secret.get_secret_value()] if self.secret is not None else []
        return tuple(out + [s.get_secret_value() for s in self.secrets])


def _webhook(key: str | bytes) -> Webhook:
    if isinstance(key, str) and not key.startswith(Webhook._SECRET_PREFIX):
        key = key.encode()
    try:
        return Webhook(key)
    except Exception:
        raise ValueError("webhook secret must be whsec_<base64> or a non-empty string (value not shown)") from None


def signature_headers(keys: tuple[str | bytes, ...], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for `body`, one signature per key."""
    when = datetime.fromtimestamp(timestamp, tz=timezone.utc)
    sigs = [_webhook(k).sign(msg_id, when, body.decode()) for k in keys]
    return {ID_HEADER: msg_id, TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: " ".join(sigs)}


def verify(key: str | bytes, headers: Mapping[str, str], body: bytes) -> bool:
    """True when one signature in `headers` is `key`'s over this body and the timestamp is within 5 minutes."""
    try:
        _webhook(key).verify(body, dict(headers), json_parse=False)
    except (WebhookVerificationError, ValueError):
        return False
    return True


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
        keys = self.config.keys()
        if keys:
            headers.update(signature_headers(keys, idempotency_key, int(self.clock()), body))
        return post_json(self.client, str(self.config.url), body, headers, self.config.timeout_s)
