"""The accelerator agent's control API: power limits over HTTP, authenticated, rate-limited.

    GET  /v1/capabilities               per accelerator: settable, min/max/default W, or why not
    GET  /v1/power-limit                per accelerator: the limit now and any dcops cap (lease)
    POST /v1/power-limit                {"accels": [0, 1] | "all", "watts": 450 | "fraction": 0.8,
                                         "ttl_s": 900, "reason": "...", "incident": "...", "step": "..."}
    POST /v1/power-limit/restore        {"accels": [...] | "all", "reason": "..."}

An agent serving several simulated hosts (the demo) answers the same paths under
`/hosts/<host>/`; a real agent answers them at the root and under its own host name.

Never open: every request needs `Authorization: Bearer <token>`, a token signed with
HMAC-SHA256 under the agent's key (`mint_token`), carrying who it is for (`sub`), the scope
`power` and an expiry. An agent without a key serves no control API at all. Each subject gets
a token bucket (`rate` requests per second, `burst` at once): more is answered 429. Bodies are
JSON objects of at most 64 KiB; a bad field is answered 400 naming it.

Who asked is the token's subject, why is the request's `reason` (and `incident`/`step`); both
go to the controller's audit trail with the limits before and after.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping

from dcops.collectors.power_control import CapRequest, PowerControlError, PowerController
from dcops.tokens import TokenError, mint_token, verify_token

__all__ = ["TokenError", "mint_token", "verify_token", "ControlApi", "JsonlAudit"]

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024


class JsonlAudit:
    """Append-only JSON lines, each carrying the SHA-256 of the line before (a chain a reader
    can verify), fsynced before the change is reported done."""

    def __init__(self, path) -> None:
        from pathlib import Path

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        last = b""
        if self.path.exists():
            lines = self.path.read_bytes().splitlines()
            last = lines[-1] if lines else b""
        self._prev = hashlib.sha256(last).hexdigest() if last else ""

    def __call__(self, record: dict) -> None:
        with self._lock:
            line = json.dumps({**record, "prev": self._prev}, sort_keys=True, separators=(",", ":")).encode()
            with open(self.path, "ab") as fh:
                fh.write(line + b"\n")
                fh.flush()
                import os

                os.fsync(fh.fileno())
            self._prev = hashlib.sha256(line).hexdigest()


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass
class ControlApi:
    """WSGI app over one or more hosts' `PowerController`s. `start()` runs the expiry loop."""

    controllers: Mapping[str, PowerController]
    key: bytes
    rate: float = 1.0
    burst: int = 20
    clock: Callable[[], float] = time.time
    default_host: str | None = None
    _buckets: dict[str, _Bucket] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if not self.key:
            raise ValueError("the control API needs a signing key: it is never served open")
        if self.default_host is None and len(self.controllers) == 1:
            self.default_host = next(iter(self.controllers))

    # ----- expiry loop ------------------------------------------------------------------
    def start(self, period_s: float = 1.0) -> None:
        def loop() -> None:
            while not self._stop.wait(period_s):
                self.expire_all()

        self._thread = threading.Thread(target=loop, name="dcops-power-expiry", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def expire_all(self) -> None:
        for c in self.controllers.values():
            try:
                c.expire()
            except Exception:  # noqa: BLE001 - one host's failure must not stop the others' expiry
                log.exception("power cap expiry failed on %s", c.host)

    # ----- WSGI -------------------------------------------------------------------------
    def __call__(self, environ, start_response):
        status, body, headers = self.handle(environ)
        data = json.dumps(body, sort_keys=True).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data))), *headers])
        return [data]

    def handle(self, environ) -> tuple[str, object, list]:
        try:
            subject = verify_token(self.key, _bearer(environ), self.clock)
        except TokenError as exc:
            return "401 Unauthorized", {"error": str(exc)}, [("WWW-Authenticate", 'Bearer error="invalid_token"')]
        if not self._allow(subject):
            return "429 Too Many Requests", {"error": f"rate limit for {subject}"}, [("Retry-After", "1")]
        method, path = environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "/")
        host, path = self._route(path)
        ctl = self.controllers.get(host or "")
        if ctl is None:
            return "404 Not Found", {"error": f"no such host {host!r}" if host else f"no such path {path}"}, []
        try:
            if method == "GET" and path == "/v1/capabilities":
                return "200 OK", {"host": ctl.host, "accelerators": ctl.capabilities()}, []
            if method == "GET" and path == "/v1/power-limit":
                return "200 OK", {"host": ctl.host, "accelerators": ctl.state()}, []
            if method == "POST" and path in ("/v1/power-limit", "/v1/power-limit/restore"):
                req = _body(environ)
                if path.endswith("/restore"):
                    res = ctl.restore(_accels(req), subject, _str(req, "reason", required=True))
                else:
                    res = ctl.apply(_cap_request(req, subject))
                ok = all(r.ok for r in res)
                return ("200 OK" if ok else "409 Conflict"), {"host": ctl.host, "results": [r.to_dict() for r in res]}, []
        except ValueError as exc:
            return "400 Bad Request", {"error": str(exc)}, []
        except PowerControlError as exc:
            return "409 Conflict", {"error": str(exc)}, []
        return "404 Not Found", {"error": f"no such path {method} {path}"}, []

    def _route(self, path: str) -> tuple[str | None, str]:
        if path.startswith("/hosts/"):
            host, _, rest = path[len("/hosts/"):].partition("/")
            return host, "/" + rest
        return self.default_host, path

    def _allow(self, subject: str) -> bool:
        now = self.clock()
        with self._lock:
            b = self._buckets.get(subject) or _Bucket(float(self.burst), now)
            b.tokens = min(float(self.burst), b.tokens + (now - b.at) * self.rate)
            b.at = now
            self._buckets[subject] = b
            if b.tokens < 1.0:
                return False
            b.tokens -= 1.0
            return True


def _bearer(environ) -> str:
    auth = environ.get("HTTP_AUTHORIZATION", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise TokenError("missing bearer token")
    return token.strip()


def _body(environ) -> dict:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise ValueError("bad Content-Length") from None
    if length <= 0:
        raise ValueError("a JSON object body is required")
    if length > MAX_BODY:
        raise ValueError(f"body larger than {MAX_BODY} bytes")
    raw = environ["wsgi.input"].read(length)
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    unknown = set(body) - {"accels", "accel", "watts", "fraction", "ttl_s", "reason", "incident", "step"}
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(sorted(unknown))}")
    return body


def _accels(req: dict) -> tuple[int, ...]:
    if "accel" in req and "accels" in req:
        raise ValueError("give 'accel' or 'accels', not both")
    v = req.get("accels", [req["accel"]] if "accel" in req else "all")
    if v == "all":
        return ()
    if not isinstance(v, list) or not v or not all(isinstance(a, int) and not isinstance(a, bool) and a >= 0 for a in v):
        raise ValueError("'accels' must be \"all\" or a non-empty list of accelerator indices")
    return tuple(v)


def _str(req: dict, name: str, required: bool = False) -> str:
    v = req.get(name, "")
    if not isinstance(v, str) or (required and not v.strip()):
        raise ValueError(f"'{name}' must be a{' non-empty' if required else ''} string")
    return v[:500]


def _num(req: dict, name: str) -> float | None:
    v = req.get(name)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"'{name}' must be a number")
    return float(v)


def _cap_request(req: dict, subject: str) -> CapRequest:
    ttl = _num(req, "ttl_s")
    if ttl is None:
        raise ValueError("'ttl_s' is required: every cap expires unless renewed")
    return CapRequest(accels=_accels(req), ttl_s=ttl, requested_by=subject, reason=_str(req, "reason", required=True),
                      watts=_num(req, "watts"), fraction=_num(req, "fraction"), incident=_str(req, "incident"),
                      step=_str(req, "step"))
