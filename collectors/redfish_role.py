"""The `redfish` role: poll the site's BMCs and receive their EventService pushes.

- Polling: every server with a `bmc:` is polled at the shortest `interval_s` of the site's BMCs;
  batches and events go to the bus keyed by rack.
- Events pushed by BMCs: at start the role subscribes at each BMC's EventService
  (`POST /redfish/v1/EventService/Subscriptions`, Protocol Redfish, a `Context` token unique to
  that BMC) with `settings.redfish.events_url` as the destination, and serves that endpoint
  (waitress). A push whose `Context` is not the token given to that server is refused (403), a
  body that is not a Redfish Event is refused (400 naming why); accepted pushes become `bmc_log`
  events at once, so a PSU failure pages without waiting for the next poll. A BMC that does not
  support subscriptions is still polled (its log is read incrementally), and says so once.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from typing import Callable, Mapping

from dcops.batch import Event
from dcops.collectors.redfish_logs import entry_from_event

__all__ = ["EventReceiver", "subscribe", "run_role"]

log = logging.getLogger(__name__)
MAX_BODY = 256 * 1024


class EventReceiver:
    """WSGI app: POST /redfish/events/<server> with a Redfish Event body."""

    def __init__(self, tokens: Mapping[str, str], emit: Callable[[list[Event]], None], tags: Callable[[str], dict],
                 clock: Callable[[], int] = time.time_ns) -> None:
        self.tokens, self.emit, self.tags, self.clock = dict(tokens), emit, tags, clock
        self.accepted = 0
        self.refused = 0

    def __call__(self, environ, start_response):
        code, body = self.handle(environ)
        if code >= 300:
            self.refused += 1
        data = json.dumps(body).encode()
        start_response(f"{code} {'OK' if code < 300 else 'Refused'}",
                       [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]

    def handle(self, environ) -> tuple[int, dict]:
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") != "POST" or not path.startswith("/redfish/events/"):
            return 404, {"error": "POST /redfish/events/<server>"}
        server = path[len("/redfish/events/"):].strip("/")
        if server not in self.tokens:
            return 404, {"error": f"no subscription for {server!r}"}
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return 400, {"error": "bad Content-Length"}
        if not 0 < length <= MAX_BODY:
            return 400, {"error": f"body must be 1..{MAX_BODY} bytes"}
        try:
            payload = json.loads(environ["wsgi.input"].read(length))
        except (ValueError, UnicodeDecodeError) as exc:
            return 400, {"error": f"body is not JSON: {exc}"}
        if not isinstance(payload, dict):
            return 400, {"error": "body must be a JSON object"}
        context = payload.get("Context", "")
        if not isinstance(context, str) or not secrets.compare_digest(context, self.tokens[server]):
            return 403, {"error": "Context does not match this server's subscription"}
        try:
            entries = entry_from_event(payload, self.clock())
        except ValueError as exc:
            return 400, {"error": str(exc)}
        tags = self.tags(server)
        self.emit([Event(e.time_ns or self.clock(), "bmc_log", "redfish", tags, e.severity, e.message,
                         {"message_id": e.message_id, "log": "EventService", "entry": e.entry_id, "origin": e.origin})
                   for e in entries])
        self.accepted += len(entries)
        return 200, {"accepted": len(entries)}


def subscribe(conn, destination: str, context: str) -> str:
    """Ask a BMC to push its events to `destination`; returns the subscription's URI ("" when
    the BMC has no EventService). Raises the connection's errors."""
    root = conn.fetch("/redfish/v1") or {}
    if "EventService" not in root:
        return ""
    body = {"Destination": destination, "Protocol": "Redfish", "Context": context, "EventFormatType": "Event"}
    r = conn.conn.post("/redfish/v1/EventService/Subscriptions", data=body)
    return str(r.headers.get("Location", ""))


def run_role(cfg, stop: threading.Event) -> None:
    from dcops.bus import publish_batch, publish_events
    from dcops.collectors.redfish_client import BmcUnavailable, RedfishConnection
    from dcops.collectors.redfish_poller import RedfishPoller, targets_from_site
    from dcops.topology import build_inventory
    from dcops.wiring import open_bus

    targets = targets_from_site(cfg)
    if not targets:
        log.warning("redfish role: no server of %s has a bmc section; nothing to poll", cfg.site)
        stop.wait()
        return
    inv = build_inventory(cfg)
    settings = cfg.settings.redfish
    bus = open_bus(cfg.settings.bus, client_id="redfish")
    poller = RedfishPoller(targets, inv, state_path=settings.state_path)
    interval = min(s.bmc.interval_s for h in cfg.halls for r in h.rows for k in r.racks for s in cfg.servers_of(k) if s.bmc)
    lock = threading.Lock()

    def emit(events: list[Event]) -> None:
        with lock:
            publish_events(bus, events, key=str(events[0].target.get("rack", "")) if events else "")

    server = None
    if settings.events_url:
        from waitress.server import create_server

        tokens = {t.name: secrets.token_urlsafe(18) for t in targets}
        receiver = EventReceiver(tokens, emit, lambda s: dict(inv.get(s).tags(inv.site)) if s in inv.components else {"device": s})
        server = create_server(receiver, host=settings.events_host, port=settings.events_port, threads=4, ident="dcops-redfish")
        threading.Thread(target=server.run, name="dcops-redfish-events", daemon=True).start()
        for t in targets:
            try:
                conn = RedfishConnection(t)
                where = subscribe(conn, f"{settings.events_url.rstrip('/')}/redfish/events/{t.name}", tokens[t.name])
                conn.close()
                log.info("redfish: %s pushes its events (%s)", t.name, where or "no EventService: polled only")
            except (BmcUnavailable, Exception) as exc:  # noqa: BLE001 - a BMC that cannot subscribe is still polled
                log.warning("redfish: %s: no event subscription (%s); its logs are polled", t.name, exc)
    try:
        while True:
            started = time.monotonic()
            batches, events, problems = poller.poll()
            with lock:
                for b in batches:
                    publish_batch(bus, b, key=str(b.tags["rack"][0]) if len(b) and "rack" in b.tags else "")
                publish_events(bus, events, key="redfish")
            for p in problems:
                log.warning("redfish: %s", p)
            if stop.wait(max(0.0, interval - (time.monotonic() - started))):
                break
    finally:
        poller.close()
        if server is not None:
            server.close()
        bus.flush()
        bus.close()
