"""The demo's stand-in for an on-call pager: a real HTTP webhook receiver on loopback.

The demo's alerter routes every notification here through the durable outbox, signed per the
Standard Webhooks spec; the pager checks each signature and prints one line per page, so a newcomer sees
what on-call would receive. Pages with a bad signature are refused (401).
"""

from __future__ import annotations

import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from dcops.alerts.notification.notifiers.webhook import verify

__all__ = ["DemoPager"]


class DemoPager:
    def __init__(self, say: Callable[[str], None]) -> None:
        self.secret = secrets.token_urlsafe(24)
        self.received: list[dict] = []
        self.refused = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                return

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))
                ok = verify(outer.secret, dict(self.headers.items()), body)
                if not ok:
                    outer.refused += 1
                    self.send_response(401)
                    self.end_headers()
                    return
                try:
                    page = json.loads(body)
                except ValueError:
                    page = {}
                key = self.headers.get("Idempotency-Key", "")
                first = all(p.get("_key") != key for p in outer.received)
                page["_key"] = key
                outer.received.append(page)
                if first:
                    say(f"page -> on-call: {_summary(page)}")
                self.send_response(200)
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="dcops-demo-pager", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _summary(page: dict) -> str:
    inc = page.get("incident") if isinstance(page.get("incident"), dict) else page
    parts = [str(inc.get(k)) for k in ("event", "severity", "title", "summary", "root_cause") if inc.get(k)]
    return " | ".join(parts)[:200] or json.dumps(page)[:200]
