"""Secrets in config files, and keeping them out of every log line: the one resolver dcops uses.

A secret field in any dcops config file (site settings, SNMP credentials, the alerting config's
receivers, store and database URLs, runbook webhooks) takes one of:

    routing_key: "R0UT1NGKEY..."          # the value itself (discouraged outside tests)
    routing_key: "env:PD_ROUTING_KEY"      # an environment variable; if it is unset and
                                           # PD_ROUTING_KEY_FILE is set, that file's content
                                           # (the Docker/Compose `*_FILE` convention)
    routing_key: "file:/run/secrets/pd"    # a mounted secret (Compose/Kubernetes); one
                                           # trailing newline is dropped

Fields are typed `Secret` (a pydantic `SecretStr`: never printed, `**********` in reprs) or
`SecretText` (a plain `str` that may embed a secret, e.g. a database URL with a password).
A reference that cannot be resolved is a validation error of that field, so the config
loaders (`dcops.yamlconf.validate_with_lines`) name file, line and field:

    alerting.yaml:7: receivers.1.routing_key: environment variable PD_ROUTING_KEY is not set
        (nor PD_ROUTING_KEY_FILE)

Every value resolved here is remembered (in this process only) so `redact()` and the logging
filter `RedactingFilter` replace it with `***` wherever it appears; they also mask URL user-info
(`//user:***@`), secret-looking query parameters (`?token=***`), `Authorization` values and
Slack webhook paths, which catches credentials that never went through a config field
(a URL typed on the command line, an exception text from a client library).
"""

from __future__ import annotations

import logging
import os
import re
import threading
from pathlib import Path
from typing import Annotated

from pydantic import BeforeValidator, SecretStr

__all__ = ["MASK", "RedactingFilter", "Secret", "SecretText", "SecretRefError", "install_log_redaction", "redact",
           "remember", "resolve"]

MASK = "***"
_MAX_FILE = 64 << 10
_known: set[str] = set()
_lock = threading.Lock()


class SecretRefError(ValueError):
    """An `env:` or `file:` reference that cannot be resolved (the text names what is missing)."""


def remember(value: str, min_len: int = 4) -> str:
    """Add `value` to the secrets `redact()` masks (short values are not: too many false hits)."""
    if isinstance(value, str) and len(value) >= min_len:
        with _lock:
            _known.add(value)
    return value


def _read_file(path: str, what: str) -> str:
    p = Path(path)
    try:
        if p.stat().st_size > _MAX_FILE:
            raise SecretRefError(f"{what}: secret file {path} is larger than {_MAX_FILE} bytes")
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SecretRefError(f"{what}: secret file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretRefError(f"{what}: cannot read secret file {path} ({getattr(exc, 'strerror', None) or exc})") from None
    text = text[:-1] if text.endswith("\n") else text
    if not text:
        raise SecretRefError(f"{what}: secret file {path} is empty")
    return text


def resolve(value: str) -> str:
    """The value an `env:NAME` / `file:PATH` reference stands for (anything else is returned as is)."""
    if not isinstance(value, str):
        return value
    if value.startswith("env:"):
        name = value[4:]
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise SecretRefError(f"env: needs a variable name, e.g. env:DCOPS_INFLUX_TOKEN (got {value!r})")
        if name in os.environ:
            return remember(os.environ[name])
        if f"{name}_FILE" in os.environ:
            return remember(_read_file(os.environ[f"{name}_FILE"], f"{name}_FILE"))
        raise SecretRefError(f"environment variable {name} is not set (nor {name}_FILE)")
    if value.startswith("file:"):
        path = value[5:]
        if not path:
            raise SecretRefError("file: needs a path, e.g. file:/run/secrets/pd_routing_key")
        return remember(_read_file(path, "file:"))
    return value


def _secret(value):
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if not isinstance(value, str):
        return value
    out = resolve(value)
    # literals are masked from 8 characters (the SNMP community "public" is not worth masking in every word)
    return remember(out, 4 if out != value else 8)


def _text(value):
    out = resolve(value) if isinstance(value, str) else value
    if isinstance(value, str) and out != value:  # came from env:/file:, so the whole value is secret
        remember(out)
    if isinstance(out, str):
        for m in _USERINFO.finditer(out):  # a literal URL with a password: mask the password
            remember(m.group("pw"))
    return out


Secret = Annotated[SecretStr, BeforeValidator(_secret)]  # a secret: literal, env:NAME or file:PATH
SecretText = Annotated[str, BeforeValidator(_text)]      # a string that may hold one (URLs with passwords)

_USERINFO = re.compile(r"(?P<pre>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/\s:@]*):(?P<pw>[^/\s@]+)@")
_QUERY = re.compile(r"(?P<k>[?&;](?:[A-Za-z0-9_.-]*(?:token|key|secret|password|passwd|pwd|sig|signature|auth|"
                    r"code|credential)[A-Za-z0-9_.-]*))=(?P<v>[^&\s#\"']+)", re.IGNORECASE)
_AUTH = re.compile(r"(?P<k>(?:authorization|x-api-key|api-key|token)[\"']?\s*[:=]\s*[\"']?(?:bearer\s+|basic\s+|token\s+)?)"
                   r"(?P<v>[^\s\"',;]+)", re.IGNORECASE)
_SLACK = re.compile(r"(?P<k>hooks\.slack(?:-gov)?\.com/(?:services|workflows|triggers)/)(?P<v>[^\s\"'<>]+)")


def redact(text: str) -> str:
    """`text` with every remembered secret and every credential-shaped part masked."""
    if not text:
        return text
    with _lock:
        known = sorted(_known, key=len, reverse=True)
    for s in known:
        if s in text:
            text = text.replace(s, MASK)
    text = _USERINFO.sub(lambda m: f"{m['pre']}{m['user']}:{MASK}@", text)
    text = _QUERY.sub(lambda m: f"{m['k']}={MASK}", text)
    text = _AUTH.sub(lambda m: f"{m['k']}{MASK}", text)
    return _SLACK.sub(lambda m: f"{m['k']}{MASK}", text)


class RedactingFilter(logging.Filter):
    """A handler filter that masks secrets in the message, its arguments and the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # a bad format string: keep the raw parts, masked
            msg = f"{record.msg} {record.args}"
        record.msg, record.args = redact(msg), None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Put a `RedactingFilter` on every handler of `logger` (the root logger by default)."""
    logger = logger or logging.getLogger()
    for h in logger.handlers:
        if not any(isinstance(f, RedactingFilter) for f in h.filters):
            h.addFilter(RedactingFilter())
