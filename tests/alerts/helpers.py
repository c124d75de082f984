"""Test helpers for alerts: a real HTTP receiver on loopback, and sim -> bus plumbing."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.alerts.stdwebhooks import reference_verify
from dcops.bus import publish_batch, publish_events

GROUND_TRUTH = ("fault_injected", "fault_cleared")


class Receiver:
    """A webhook receiver on 127.0.0.1: answers 500 to the first `fail_first` requests (or while
    `failing` is set), then 200; records what it accepted by idempotency key."""

    def __init__(self, fail_first: int = 0, secret: bytes | None = None) -> None:
        self.fail_first = fail_first
        self.secret = secret
        self.failing = False
        self.requests = 0
        self.rejected = 0
        self.accepted: Counter[str] = Counter()
        self.bodies: dict[str, dict] = {}
        self.bad_signatures = 0
        self.lock = threading.Lock()
        rec = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with rec.lock:
                    rec.requests += 1
                    fail = rec.failing or rec.requests <= rec.fail_first
                    if not fail and rec.secret is not None and not reference_verify(
                            rec.secret, dict(self.headers.items()), body):
                        rec.bad_signatures += 1
                        fail = True
                    if fail:
                        rec.rejected += 1
                    else:
                        key = self.headers.get("Idempotency-Key", "")
                        rec.accepted[key] += 1
                        rec.bodies[key] = json.loads(body)
                self.send_response(500 if fail else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def pump(sim, bus, steps: int, cursor: int = 0) -> int:
    """Step the simulator `steps` times, publishing its batches and (non ground-truth) events."""
    for _ in range(steps):
        sim.step()
        for b in sim.batches():
            publish_batch(bus, b, key=b.measurement)
        events, cursor = sim.events_since(cursor)
        publish_events(bus, [e for e in events if e.kind not in GROUND_TRUTH], key="events")
    return cursor


def wait_for(cond, timeout_s: float = 30.0, every_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(every_s)
    return cond()


def alerting_yaml(*receivers: tuple[str, str, str | None], extra: str = "") -> str:
    """Alerting config text with webhook receivers (name, url, secret); the first is the default route."""
    lines = ["receivers:"]
    for name, url, secret in receivers:
        lines.append(f"  - {{name: {name}, type: webhook, url: \"{url}\"" + (f", secret: \"{secret}\"" if secret else "") + "}")
    lines.append(f"route: {{receiver: {receivers[0][0]}}}")
    lines.append("outbox: {backoff_base_s: 0.05, backoff_max_s: 0.4, poll_s: 0.05, max_attempts: 50}")
    lines.append("grouping: {group_wait_s: 30}")
    return "\n".join(lines) + "\n" + extra
