"""E-mail over SMTP (optionally STARTTLS and login). The Message-ID is derived from the
idempotency key, so a repeat delivery is recognisable as the same message."""

from __future__ import annotations

import json
import smtplib
import socket
from email.message import EmailMessage
from typing import Any, Mapping

from pydantic import Field, SecretStr

from dcops.alerts.notification.notifiers.base import DeliveryResult, NotifierConfig, summary_of

__all__ = ["EmailConfig", "EmailNotifier", "build_email"]


class EmailConfig(NotifierConfig):
    host: str = "127.0.0.1"
    port: int = Field(25, ge=1, le=65535)
    starttls: bool = False
    username: str | None = None
    password: SecretStr | None = None
    sender: str = Field(min_length=3)
    to: tuple[str, ...] = Field(min_length=1)
    timeout_s: float = Field(10.0, gt=0)


def build_email(message: Mapping[str, Any], sender: str, to: tuple[str, ...], idempotency_key: str) -> EmailMessage:
    m = EmailMessage()
    m["Subject"] = summary_of(message)
    m["From"] = sender
    m["To"] = ", ".join(to)
    safe = "".join(c if c.isalnum() or c in "-." else "-" for c in idempotency_key)
    m["Message-ID"] = f"<{safe}@dcops>"
    m["X-Dcops-Idempotency-Key"] = idempotency_key
    root = message.get("root_alarm") or {}
    lines = [summary_of(message), ""]
    if root:
        lines += [f"Root cause: {root.get('managed_object', '')}", f"  {root.get('specific_problem', '')}",
                  f"  probable cause {root.get('probable_cause', '')}"]
        for act in root.get("proposed_repair_actions", []) or []:
            lines.append(f"  - {act}")
    if message.get("symptom_count"):
        lines.append(f"{message['symptom_count']} correlated alarm(s) downstream")
    lines += ["", json.dumps(message, indent=2, default=str)]
    m.set_content("\n".join(lines))
    return m


class EmailNotifier:
    config_model = EmailConfig

    def __init__(self, config: EmailConfig, client=None) -> None:
        self.config = config

    def send(self, message: Mapping[str, Any], idempotency_key: str) -> DeliveryResult:
        c = self.config
        msg = build_email(message, c.sender, c.to, idempotency_key)
        try:
            with smtplib.SMTP(c.host, c.port, timeout=c.timeout_s) as smtp:
                if c.starttls:
                    smtp.starttls()
                if c.username:
                    smtp.login(c.username, c.password.get_secret_value() if c.password else "")
                smtp.send_message(msg)
        except smtplib.SMTPResponseException as exc:
            retry = 400 <= exc.smtp_code < 500
            return DeliveryResult(False, retryable=retry, status=exc.smtp_code, error=f"SMTP {exc.smtp_code}")
        except (smtplib.SMTPException, OSError, socket.timeout) as exc:
            return DeliveryResult(False, retryable=True, error=f"{type(exc).__name__}: {exc}"[:300])
        return DeliveryResult(True, status=250)
