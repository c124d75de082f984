"""Notifiers, registered by name in `NOTIFIERS` (receiver `type:` in the alerting config).

Each entry is a class with a `config_model` (pydantic, secrets as SecretStr) and
`send(message, idempotency_key) -> DeliveryResult`. Add a notifier = add a module and a row.
"""

from __future__ import annotations

from types import MappingProxyType

from dcops.alerts.notification.notifiers.base import DeliveryResult, classify_http
from dcops.alerts.notification.notifiers.email import EmailNotifier
from dcops.alerts.notification.notifiers.pagerduty import PagerDutyNotifier
from dcops.alerts.notification.notifiers.slack import SlackNotifier
from dcops.alerts.notification.notifiers.webhook import WebhookNotifier, signature_headers, verify

__all__ = ["NOTIFIERS", "DeliveryResult", "classify_http", "signature_headers", "verify"]

NOTIFIERS = MappingProxyType({
    "webhook": WebhookNotifier,
    "slack": SlackNotifier,
    "pagerduty": PagerDutyNotifier,
    "email": EmailNotifier,
})
