"""E-mail over SMTP: plain, STARTTLS (587) or implicit TLS (465), with a verifying TLS context.

- TLS always uses `ssl.create_default_context()` (certificate chain and host name checked;
  `ca_file` adds a private CA). `tls: starttls` refuses to log in or send if the server does not
  offer STARTTLS; `tls: implicit` speaks TLS from the first byte (SMTPS, port 465).
- Headers per RFC 5322: `Date` (from the injected clock), `Message-ID` `<key@domain>` derived
  from the idempotency key (a repeat delivery is recognisable as the same message; the domain
  is `message_id_domain` or the sender's), `From`, `To`, `Subject`.
- 4xx SMTP replies are retried by the outbox, 5xx are permanent.
"""

from __future__ import annotations

import json
import smtplib
import socket
import ssl
import time
from email.message import EmailMessage
from email.utils import format_datetime, formatdate
from datetime import datetime, timezone
from typing import Any, Callable, Literal, Mapping

from pydantic import Field, model_validator

from dcops.alerts.notification.notifiers.base import DeliveryResult, NotifierConfig, iso_time, links_of, summary_of
from dcops.secrets import Secret, SecretText, redact

__all__ = ["EmailConfig", "EmailNotifier", "build_email"]


class EmailConfig(NotifierConfig):
    host: str = "127.0.0.1"
    port: int | None = Field(None, ge=1, le=65535, description="25, 587 with starttls, 465 with implicit TLS")
    tls: Literal["none", "starttls", "implicit"] = "none"
    starttls: bool | None = Field(None, description="old spelling of tls: starttls")
    ca_file: str | None = Field(None, description="PEM file of a private CA that signed the server certificate")
    username: SecretText | None = None
    password: Secret | None = None
    sender: str = Field(min_length=3, pattern=r"^[^@\s<>]+@[^@\s<>]+$")
    to: tuple[str, ...] = Field(min_length=1)
    message_id_domain: str | None = Field(None, pattern=r"^[A-Za-z0-9.-]+$")
    timeout_s: float = Field(10.0, gt=0)

    @model_validator(mode="after")
    def _compat(self):
        if self.starttls and self.tls == "none":
            object.__setattr__(self, "tls", "starttls")
        if self.port is None:
            object.__setattr__(self, "port", {"none": 25, "starttls": 587, "implicit": 465}[self.tls])
        if self.password is not None and self.tls == "none" and self.host not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError("an SMTP password is only sent over TLS: set tls: starttls or tls: implicit")
        return self


def build_email(message: Mapping[str, Any], sender: str, to: tuple[str, ...], idempotency_key: str,
                *, domain: str | None = None, now_s: float | None = None) -> EmailMessage:
    m = EmailMessage()
    m["Subject"] = summary_of(message)
    m["From"] = sender
    m["To"] = ", ".join(to)
    m["Date"] = formatdate(now_s, usegmt=True) if now_s is not None else format_datetime(datetime.now(timezone.utc))
    safe = "".join(c if c.isalnum() or c in "-." else "-" for c in idempotency_key).strip(".") or "dcops"
    m["Message-ID"] = f"<{safe}@{domain or sender.rsplit('@', 1)[-1]}>"
    m["X-Dcops-Idempotency-Key"] = idempotency_key
    inc = message.get("incident") or {}
    root = message.get("root_alarm") or {}
    lines = [summary_of(message), ""]
    if inc.get("opened_ns"):
        lines.append(f"Opened: {iso_time(inc['opened_ns'])}   Site: {message.get('site', '')}")
    links = links_of(message)
    if links:
        lines.append(f"Incident: {links[0]['href']}")
    if root:
        lines += ["", f"Root cause: {root.get('managed_object', '')}", f"  {root.get('specific_problem', '')}",
                  f"  probable cause {root.get('probable_cause', '')}"]
        for act in root.get("proposed_repair_actions", []) or []:
            lines.append(f"  - {act}")
    if message.get("symptom_count"):
        lines.append(f"{message['symptom_count']} correlated alarm(s) downstream")
    for x in links[1:]:
        lines.append(f"{x['text']}: {x['href']}")
    lines += ["", json.dumps(message, indent=2, default=str)]
    m.set_content("\n".join(lines))
    return m


class EmailNotifier:
    config_model = EmailConfig

    def __init__(self, config: EmailConfig, client=None, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.config.ca_file)

    def send(self, message: Mapping[str, Any], idempotency_key: str) -> DeliveryResult:
        c = self.config
        msg = build_email(message, c.sender, c.to, idempotency_key, domain=c.message_id_domain, now_s=self.clock())
        try:
            if c.tls == "implicit":
                smtp = smtplib.SMTP_SSL(c.host, c.port, timeout=c.timeout_s, context=self._context())
            else:
                smtp = smtplib.SMTP(c.host, c.port, timeout=c.timeout_s)
            with smtp:
                if c.tls == "starttls":
                    smtp.ehlo()
                    if not smtp.has_extn("starttls"):
                        return DeliveryResult(False, retryable=False, error=f"{c.host}:{c.port} does not offer STARTTLS")
                    smtp.starttls(context=self._context())
                    smtp.ehlo()
                if c.username:
                    smtp.login(c.username, c.password.get_secret_value() if c.password else "")
                smtp.send_message(msg)
        except smtplib.SMTPResponseException as exc:
            retry = 400 <= exc.smtp_code < 500
            return DeliveryResult(False, retryable=retry, status=exc.smtp_code,
                                  error=redact(f"SMTP {exc.smtp_code} {exc.smtp_error[:200]!r}"))
        except ssl.SSLCertVerificationError as exc:
            return DeliveryResult(False, retryable=False, error=f"TLS certificate of {c.host} not trusted: {exc.verify_message}")
        except (smtplib.SMTPException, OSError, socket.timeout) as exc:
            return DeliveryResult(False, retryable=True, error=redact(f"{type(exc).__name__}: {exc}")[:300])
        return DeliveryResult(True, status=250)
