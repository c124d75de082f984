"""Inbound Prometheus Alertmanager webhook: existing alerting can feed dcops.

`alertmanager_app` is a WSGI app for `POST /api/v1/alertmanager` taking Alertmanager's webhook
body (version "4": `{receiver, status, groupKey, truncatedAlerts, externalURL, alerts: [...]}`).
Each alert becomes an `AlarmSignal`:

- identity: Alertmanager's `fingerprint` (else a hash of the full label set) is part of the
  signal's rule (`alertmanager:<alertname>@<fingerprint>`), so two alerts that land on one
  component stay two sources and resolving one leaves the other firing;
- component: the first entry of `COMPONENT_LABELS` whose labels are present and that the
  inventory knows (else the first present one): dcops' own `component`, dcgm-exporter
  `Hostname` + `gpu` (`<host>:<gpu>`, dcops' accelerator name), RBLN `hostname` + `npu`,
  kube `node`, node-exporter `instance` (port stripped), `nodename`, `host`, `device`, `rack`.
  The label used is kept on the alarm (`component_label`), with `component_resolved`;
- probable cause / event type: labels `probable_cause` / `event_type` when they are X.733
  names, else `external` / `qualityOfServiceAlarm`; severity from label `severity`;
- links back: `generatorURL` (the expression in Prometheus), `externalURL` (Alertmanager),
  `runbook_url` (a repair action) are kept as alarm labels and in the alarm text.

A group Alertmanager truncated (`truncatedAlerts > 0`, the receiver's `max_alerts`) raises a
warning alarm on `alertmanager:<receiver>` saying how many alerts were not sent; it clears when
the group arrives whole. Hostile or broken input is refused with a 4xx and never blocks the
next request: the envelope is checked first (400), then every alert alone; bad alerts (a
`startsAt` outside 1970..2200 or more than a day ahead, a label that is not a string, ...)
are answered 422 with their index and problems while the good ones of the same body are
stored, and a warning alarm says alerts were refused. Bodies over `MAX_BODY` (413), nested
deeper than `MAX_DEPTH`, or not JSON (400) are refused before parsing goes further; a body
shorter than its Content-Length is dropped by the server after its channel timeout.

Signals are persisted by the alerter before the 200/422 is sent, so Alertmanager's own retries
(it retries 5xx only) cover a crash; a store failure answers 503 and is logged.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dcops.alerts.alarms.signals import AlarmSignal
from dcops.alarm_types import EventType, PerceivedSeverity, ProbableCause
from dcops.topology import Inventory

__all__ = ["AlertmanagerAlert", "AlertmanagerPayload", "COMPONENT_LABELS", "Refused", "alertmanager_app",
           "resolve_component", "signals_from_alertmanager", "serve", "PATH"]

log = logging.getLogger(__name__)

PATH = "/api/v1/alertmanager"
MAX_BODY = 4 << 20
MAX_DEPTH = 8          # the webhook body is 4 levels deep; anything deeper is not Alertmanager
MAX_ALERTS = 5000
MAX_FUTURE_S = 86400.0
_YEARS = (1970, 2200)   # nanosecond timestamps must fit in int64 (2262)
_SEV = {"critical": PerceivedSeverity.CRITICAL, "page": PerceivedSeverity.CRITICAL, "major": PerceivedSeverity.MAJOR,
        "error": PerceivedSeverity.MAJOR, "high": PerceivedSeverity.MAJOR, "minor": PerceivedSeverity.MINOR,
        "warning": PerceivedSeverity.WARNING, "warn": PerceivedSeverity.WARNING, "info": PerceivedSeverity.INDETERMINATE}
_CAUSES = {c.value: c for c in ProbableCause}
_TYPES = {t.value: t for t in EventType}


@dataclass(frozen=True)
class ComponentLabels:
    """Labels that name a component in one exporter's label set, and how to join them."""

    labels: tuple[str, ...]
    source: str
    sep: str = ":"


COMPONENT_LABELS: tuple[ComponentLabels, ...] = (
    ComponentLabels(("component",), "dcops"),
    ComponentLabels(("Hostname", "gpu"), "dcgm-exporter"),        # accelerator <host>:<index>
    ComponentLabels(("hostname", "npu"), "rbln-exporter"),
    ComponentLabels(("Hostname",), "dcgm-exporter"),
    ComponentLabels(("node",), "kubernetes"),                     # kube-state-metrics, kubelet
    ComponentLabels(("kubernetes_node",), "kubernetes"),
    ComponentLabels(("instance",), "prometheus"),                 # node-exporter target, port stripped
    ComponentLabels(("nodename",), "node-exporter"),
    ComponentLabels(("hostname",), "generic"),
    ComponentLabels(("host",), "generic"),
    ComponentLabels(("device",), "dcops"),                        # dcops device names (not nvidia0, sda)
    ComponentLabels(("rack",), "dcops"),
)


def _in_range(v: datetime | None, field: str, allow_zero: bool) -> datetime | None:
    if v is None:
        return None
    if v.tzinfo is None:
        v = v.replace(tzinfo=timezone.utc)
    if v.year < _YEARS[0] and allow_zero:
        return None  # Alertmanager's zero time (0001-01-01) on firing alerts
    if not _YEARS[0] <= v.year <= _YEARS[1]:
        raise ValueError(f"{field} {v.isoformat()} is outside {_YEARS[0]}..{_YEARS[1]}")
    return v


class AlertmanagerAlert(BaseModel):
    model_config = ConfigDict(extra="allow")
    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(min_length=1, max_length=128)
    annotations: dict[str, str] = Field(default_factory=dict, max_length=128)
    startsAt: datetime
    endsAt: datetime | None = None
    generatorURL: str = Field("", max_length=4096)
    fingerprint: str = Field("", max_length=64)

    @field_validator("startsAt")
    @classmethod
    def _starts(cls, v):
        return _in_range(v, "startsAt", allow_zero=False)

    @field_validator("endsAt")
    @classmethod
    def _ends(cls, v):
        return _in_range(v, "endsAt", allow_zero=True)


class AlertmanagerPayload(BaseModel):
    """The envelope; alerts are validated one by one (`AlertmanagerAlert`) so one bad alert is refused alone."""

    model_config = ConfigDict(extra="allow")
    version: str = "4"
    status: Literal["firing", "resolved"]
    receiver: str = Field("", max_length=256)
    groupKey: str = Field("", max_length=4096)
    truncatedAlerts: int = Field(0, ge=0)
    externalURL: str = Field("", max_length=4096)
    alerts: list[Any] = Field(min_length=1, max_length=MAX_ALERTS)


@dataclass(frozen=True)
class Refused:
    index: int
    fingerprint: str
    problems: tuple[str, ...]

    def as_dict(self) -> dict:
        return {"index": self.index, "fingerprint": self.fingerprint, "problems": list(self.problems)}


def _problems(exc: ValidationError, prefix: str = "") -> list[str]:
    return [f"{prefix}{'.'.join(str(p) for p in e['loc']) or '(body)'}: {e['msg']}" for e in exc.errors(include_url=False)]


def resolve_component(labels: Mapping[str, str], inv: Inventory | None) -> tuple[str, str]:
    """(component name, the label(s) it came from, e.g. `Hostname+gpu`)."""
    first: tuple[str, str] | None = None
    for rule in COMPONENT_LABELS:
        vals = [labels.get(k, "") for k in rule.labels]
        if not all(vals):
            continue
        if rule.labels == ("instance",) and ":" in vals[0] and not vals[0].endswith("]"):
            vals[0] = vals[0].rsplit(":", 1)[0].strip("[]")
        name = rule.sep.join(vals)
        used = "+".join(rule.labels)
        if inv is None:
            return name, used
        for cand in (name, _short(name)):
            try:
                return inv.resolve(cand).name, used
            except KeyError:
                pass
        if first is None:
            first = (name, used)
    return first or (f"alertmanager:{labels.get('alertname', 'unknown')}", "alertname")


def _short(name: str) -> str:
    """`gpu-node-07.dc1.example:3` -> `gpu-node-07:3` (inventories use short host names)."""
    host, sep, rest = name.partition(":")
    return host.split(".", 1)[0] + sep + rest if not host.replace(".", "").isdigit() else name


def _fingerprint(alert: AlertmanagerAlert) -> str:
    if alert.fingerprint:
        return alert.fingerprint
    canon = json.dumps(sorted(alert.labels.items()), separators=(",", ":"))
    return hashlib.sha256(canon.encode()).hexdigest()[:16]


def _ns(dt: datetime) -> int:
    return int(dt.timestamp()) * 1_000_000_000 + dt.microsecond * 1000


def _signal(a: AlertmanagerAlert, payload: AlertmanagerPayload, inv: Inventory | None) -> AlarmSignal:
    lab = a.labels
    name = lab.get("alertname", "alert")
    firing = a.status == "firing"
    t = a.startsAt if firing or a.endsAt is None else a.endsAt
    component, used = resolve_component(lab, inv)
    links = {"generator_url": a.generatorURL, "alertmanager_url": payload.externalURL,
             "runbook_url": a.annotations.get("runbook_url", "")}
    text = "\n".join([a.annotations.get("description", "")]
                     + [f"{k.replace('_', ' ')}: {v}" for k, v in links.items() if v]).strip()
    return AlarmSignal(
        time_ns=_ns(t), component=component, rule=f"alertmanager:{name}@{_fingerprint(a)}", active=firing,
        severity=_SEV.get(lab.get("severity", "").lower(), PerceivedSeverity.MAJOR),
        event_type=_TYPES.get(lab.get("event_type", ""), EventType.QUALITY_OF_SERVICE),
        probable_cause=_CAUSES.get(lab.get("probable_cause", ""), ProbableCause.EXTERNAL),
        specific_problem=a.annotations.get("summary") or a.annotations.get("description") or name,
        additional_text=text,
        repair_actions=tuple(x for x in (links["runbook_url"],) if x),
        labels={**{k: v for k, v in lab.items() if k != "severity"}, "source": "alertmanager",
                "alertmanager_fingerprint": _fingerprint(a), "component_label": used,
                "component_resolved": str(inv is not None and component in inv.components).lower(),
                **{k: v for k, v in links.items() if v}},
    )


def _intake_alarm(payload: AlertmanagerPayload, rule: str, active: bool, text: str, now_ns: int) -> AlarmSignal:
    """A warning about the feed itself (truncated group, refused alerts) on `alertmanager:<receiver>`."""
    recv = payload.receiver or "default"
    return AlarmSignal(
        time_ns=now_ns, component=f"alertmanager:{recv}", rule=rule, active=active,
        severity=PerceivedSeverity.WARNING, event_type=EventType.COMMUNICATIONS,
        probable_cause=ProbableCause.EXTERNAL, specific_problem=text,
        additional_text=f"group {payload.groupKey}; Alertmanager: {payload.externalURL}".strip(),
        labels={"source": "alertmanager", "alertmanager_receiver": recv,
                **({"alertmanager_url": payload.externalURL} if payload.externalURL else {})})


def signals_from_alertmanager(payload: AlertmanagerPayload, inv: Inventory | None,
                              now_s: float | None = None) -> tuple[list[AlarmSignal], list[Refused]]:
    """The signals of every valid alert, and the alerts refused (each alone, with its problems)."""
    now_s = time.time() if now_s is None else now_s
    out: list[AlarmSignal] = []
    refused: list[Refused] = []
    for i, raw in enumerate(payload.alerts):
        fp = str(raw.get("fingerprint", ""))[:64] if isinstance(raw, dict) else ""
        try:
            a = AlertmanagerAlert.model_validate(raw)
        except ValidationError as exc:
            refused.append(Refused(i, fp, tuple(_problems(exc, f"alerts.{i}."))))
            continue
        if a.startsAt.timestamp() > now_s + MAX_FUTURE_S:
            refused.append(Refused(i, fp, (f"alerts.{i}.startsAt: {a.startsAt.isoformat()} is more than "
                                           f"{MAX_FUTURE_S / 3600:.0f} h in the future (clock skew?)",)))
            continue
        out.append(_signal(a, payload, inv))
    now_ns = int(now_s * 1e9)
    group = hashlib.sha256(payload.groupKey.encode()).hexdigest()[:12]
    n = payload.truncatedAlerts
    out.append(_intake_alarm(payload, f"alertmanager:truncated@{group}", n > 0,
                             f"Alertmanager truncated {n} alert(s) of group {payload.groupKey or '(none)'}: they were not "
                             "sent to dcops; raise max_alerts on the webhook receiver", now_ns))
    if refused:
        out.append(_intake_alarm(payload, "alertmanager:refused", True,
                                 f"{len(refused)} Alertmanager alert(s) refused as invalid (see the alerter log)", now_ns))
    return out, refused


def _depth(value: Any, limit: int) -> bool:
    """True when `value` nests no deeper than `limit` (iterative: no recursion on hostile input)."""
    stack = [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, (dict, list)):
            if d > limit:
                return False
            stack.extend((x, d + 1) for x in (v.values() if isinstance(v, dict) else v))
    return True


def _reply(start_response, status: str, body: dict) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def alertmanager_app(submit: Callable[[list[AlarmSignal]], None], inventory: Inventory | None = None,
                     token: str | None = None, clock: Callable[[], float] = time.time):
    """WSGI app; `submit` must persist the signals before returning (Alerter.submit_signals)."""
    from dcops.metrics import current

    def count(outcome: str, n: int) -> None:
        if n:
            current().get("inbound_alerts").labels(outcome=outcome).inc(n)

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
        if length > MAX_BODY:
            return _reply(start_response, "413 Content Too Large", {"error": f"body over {MAX_BODY} bytes"})
        if length <= 0:
            return _reply(start_response, "400 Bad Request", {"error": f"body must be 1..{MAX_BODY} bytes of JSON"})
        raw = environ["wsgi.input"].read(length)
        try:
            data = json.loads(raw)
        except RecursionError:
            data = None
        except (ValueError, UnicodeDecodeError) as exc:
            return _reply(start_response, "400 Bad Request", {"error": f"body is not JSON: {exc}"})
        if data is None or not _depth(data, MAX_DEPTH):
            return _reply(start_response, "400 Bad Request", {"error": f"body nests deeper than {MAX_DEPTH} levels"})
        try:
            payload = AlertmanagerPayload.model_validate(data)
        except ValidationError as exc:
            return _reply(start_response, "400 Bad Request",
                          {"error": "invalid Alertmanager webhook body", "problems": _problems(exc)})
        signals, refused = signals_from_alertmanager(payload, inventory, clock())
        for r in refused:
            log.warning("alertmanager: refused alert %d (fingerprint %r) from receiver %r: %s", r.index, r.fingerprint,
                        payload.receiver, "; ".join(r.problems))
        try:
            submit(signals)
        except Exception:  # not persisted: let Alertmanager retry, and say why in the log
            log.exception("alertmanager: could not store %d alert(s)", len(signals))
            return _reply(start_response, "503 Service Unavailable", {"error": "could not store alerts; retry"})
        accepted = len(payload.alerts) - len(refused)
        count("accepted", accepted)
        count("refused", len(refused))
        if refused:
            return _reply(start_response, "422 Unprocessable Content",
                          {"accepted": accepted, "refused": [r.as_dict() for r in refused]})
        return _reply(start_response, "200 OK", {"accepted": accepted})

    return app


def serve(app, host: str = "127.0.0.1", port: int = 0, channel_timeout_s: int = 10):
    """Serve the app with waitress in a daemon thread; returns the started `WsgiServer` (`.port`, `.close()`)."""
    from dcops.httpserve import WsgiServer

    return WsgiServer(app, host, port, name="dcops-alertmanager-inbound", channel_timeout_s=channel_timeout_s,
                      max_body=MAX_BODY).start()
