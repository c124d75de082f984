"""The demo's stand-in for an on-call pager: a real HTTP webhook receiver on loopback.

The demo's alerter routes every notification here through the durable outbox, signed per the
Standard Webhooks spec; the pager checks each signature and prints one line per page, so a newcomer sees
what on-call would receive. Pages with a bad signature are refused (401).
"""

from __future__ import annotations

import json
import secrets
from typing import Callable

from dcops.alerts.notification.notifiers.webhook import verify
from dcops.httpserve import WsgiServer, request_headers

__all__ = ["DemoPager"]


class DemoPager:
    """A WSGI webhook receiver on the one HTTP server helper (`dcops.httpserve`)."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.secret = secrets.token_urlsafe(24)
        self.received: list[dict] = []
        self.refused = 0
        self._say = say
        self._server = WsgiServer(self.app, "127.0.0.1", 0, name="dcops-demo-pager", threads=2)
        self.url = f"{self._server.url}/hook"

    def app(self, environ, start_response):
        if environ["REQUEST_METHOD"] != "POST":
            start_response("405 Method Not Allowed", [("Allow", "POST"), ("Content-Length", "0")])
            return [b""]
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        headers = request_headers(environ)
        if not verify(self.secret, headers, body):
            self.refused += 1
            start_response("401 Unauthorized", [("Content-Length", "0")])
            return [b""]
        try:
            page = json.loads(body)
        except ValueError:
            page = {}
        if not isinstance(page, dict):
            page = {"body": page}
        key = headers.get("idempotency-key", "")
        first = all(p.get("_key") != key for p in self.received)
        page["_key"] = key
        self.received.append(page)
        if first:
            self._say(f"page -> on-call: {_summary(page)}")
        start_response("200 OK", [("Content-Length", "0")])
        return [b""]

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.close()


def _summary(page: dict) -> str:
    inc = page.get("incident") if isinstance(page.get("incident"), dict) else page
    parts = [str(inc.get(k)) for k in ("event", "severity", "title", "summary", "root_cause") if inc.get(k)]
    return " | ".join(parts)[:200] or json.dumps(page)[:200]
