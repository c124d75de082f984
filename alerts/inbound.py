"""Inbound Prometheus Alertmanager webhook: existing alerting can feed dcops.

A small WSGI app (`alertmanager_app`) accepting Alertmanager's webhook body (version "4":
`{receiver, status, alerts: [{status, labels, annotations, startsAt, endsAt, fingerprint}],
groupLabels, commonLabels, ...}`) on `POST /api/v1/alertmanager`. Each alert becomes an
`AlarmSignal`:

- component: label `component`, else `device`, `instance` (port stripped), `rack`, `host`
  (resolved against the inventory by name or topology path when possible);
- probable cause / event type: labels `probable_cause` / `event_type` when they are X.733
  names, else `external` / `qualityOfServiceAlarm`;
- severity: label `severity` (critical, major/error, minor, warning, info);
- firing raises, resolved clears; the rule is `alertmanager:<alertname>`.

The body is validated with pydantic; a bad body is answered 400 with every problem named
(`alerts.0.status: Input should be 'firing' or 'resolved'`). Signals are persisted by the
alerter before the 200 is sent, so Alertmanager's own retries cover a crash. An optional
bearer token protects the endpoint (Alertmanager `http_config.authorization`).
"""

from __future__ import annotations

import hmac
import json
import threading
from datetime import datetime
from typing import Callable, Literal
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from socketserver import ThreadingMixIn

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dcops.alerts.alarms.signals import AlarmSignal
from dcops.alarm_types import EventType, PerceivedSeverity, ProbableCause
from dcops.topology import Inventory

__all__ = ["AlertmanagerAlert", "AlertmanagerPayload", "signals_from_alertmanager", "alertmanager_app", "serve"]

PATH = "/api/v1/alertmanager"
MAX_BODY = 4 << 20
_SEV = {"critical": PerceivedSeverity.CRITICAL, "page": PerceivedSeverity.CRITICAL, "major": PerceivedSeverity.MAJOR,
        "error": PerceivedSeverity.MAJOR, "high": PerceivedSeverity.MAJOR, "minor": PerceivedSeverity.MINOR,
        "warning": PerceivedSeverity.WARNING, "warn": PerceivedSeverity.WARNING, "info": PerceivedSeverity.INDETERMINATE}


class AlertmanagerAlert(BaseModel):
    model_config = ConfigDict(extra="allow")
    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(min_length=1)
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime
    endsAt: datetime | None = None
    generatorURL: str = ""
    fingerprint: str = ""


class AlertmanagerPayload(BaseModel):
    model_config = ConfigDict(extra="allow")
    version: str = "4"
    status: Literal["firing", "resolved"]
    receiver: str = ""
    alerts: list[AlertmanagerAlert] = Field(min_length=1)


def _component(labels: dict[str, str], inv: Inventory | None) -> str:
    for key in ("component", "device", "instance", "rack", "host", "hostname", "node"):
        v = labels.get(key)
        if not v:
            continue
        if key == "instance" and ":" in v and not v.startswith("["):
            v = v.rsplit(":", 1)[0]
        if inv is not None:
            try:
                return inv.resolve(v).name
            except KeyError:
                pass
        return v
    return f"alertmanager:{labels.get('alertname', 'unknown')}"


def _ns(dt: datetime) -> int:
    return int(dt.timestamp() * 1e9)


def signals_from_alertmanager(payload: AlertmanagerPayload, inv: Inventory | None) -> list[AlarmSignal]:
    out = []
    causes = {c.value: c for c in ProbableCause}
    types = {t.value: t for t in EventType}
    for a in payload.alerts:
        lab = a.labels
        name = lab.get("alertname", "alert")
        firing = a.status == "firing"
        t = a.startsAt if firing or a.endsAt is None or a.endsAt.year < 2000 else a.endsAt
        out.append(AlarmSignal(
            time_ns=_ns(t), component=_component(lab, inv), rule=f"alertmanager:{name}", active=firing,
            severity=_SEV.get(lab.get("severity", "").lower(), PerceivedSeverity.MAJOR),
            event_type=types.get(lab.get("event_type", ""), EventType.QUALITY_OF_SERVICE),
            probable_cause=causes.get(lab.get("probable_cause", ""), ProbableCause.EXTERNAL),
            specific_problem=a.annotations.get("summary") or a.annotations.get("description") or name,
            additional_text=a.annotations.get("description", ""),
            repair_actions=tuple(x for x in (a.annotations.get("runbook_url", ""),) if x),
            labels={**{k: v for k, v in lab.items() if k != "severity"}, "source": "alertmanager"},
        ))
    return out


def _reply(start_response, status: str, body: dict) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def alertmanager_app(submit: Callable[[list[AlarmSignal]], None], inventory: Inventory | None = None,
                     token: str | None = None):
    """WSGI app; `submit` must persist the signals before returning (Alerter.submit_signals)."""

    def app(environ, start_response):
        if environ.get("PATH_INFO") != PATH:
            return _reply(start_response, "404 Not Found", {"error": f"not found; POST alerts to {PATH}"})
        if environ.get("REQUEST_METHOD") != "POST":
            return _reply(start_response, "405 Method Not Allowed", {"error": "use POST"})
        if token is not None:
            given = environ.get("HTTP_AUTHORIZATION", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return _reply(start_response, "401 Unauthorized", {"error": "missing or wrong bearer token"})
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if length <= 0 or length > MAX_BODY:
            return _reply(start_response, "400 Bad Request", {"error": f"body must be 1..{MAX_BODY} bytes of JSON"})
        raw = environ["wsgi.input"].read(length)
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            return _reply(start_response, "400 Bad Request", {"error": f"body is not JSON: {exc}"})
        try:
            payload = AlertmanagerPayload.model_validate(data)
        except ValidationError as exc:
            problems = [f"{'.'.join(str(p) for p in e['loc']) or '(body)'}: {e['msg']}" for e in exc.errors(include_url=False)]
            return _reply(start_response, "400 Bad Request", {"error": "invalid Alertmanager webhook body", "problems": problems})
        signals = signals_from_alertmanager(payload, inventory)
        try:
            submit(signals)
        except Exception as exc:  # not persisted: let Alertmanager retry
            return _reply(start_response, "503 Service Unavailable", {"error": f"could not store alerts: {type(exc).__name__}"})
        return _reply(start_response, "200 OK", {"accepted": len(signals)})

    return app


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - stdlib signature
        pass


def serve(app, host: str = "127.0.0.1", port: int = 0) -> tuple[WSGIServer, threading.Thread]:
    """Serve a WSGI app in a daemon thread; returns (server, thread). `server.server_port` is the port."""
    server = make_server(host, port, app, server_class=_ThreadingServer, handler_class=_QuietHandler)
    t = threading.Thread(target=server.serve_forever, name="dcops-alertmanager-inbound", daemon=True)
    t.start()
    return server, t
