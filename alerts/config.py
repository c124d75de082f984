"""The alerting config (YAML): receivers, routes, inhibition, on-call, escalation, tuning.

Validated once with `dcops.yamlconf`, so every problem names file, line and field; cross
references (a route naming an unknown receiver, an escalation target naming an unknown
schedule) are checked too. Secrets (webhook secrets, routing keys, SMTP passwords, Slack
URLs, the inbound token) are `dcops.secrets.Secret`: a literal, `env:NAME` (or `NAME_FILE`) or
`file:/run/secrets/x`, resolved at load (a missing one is an error naming file, line and field),
never printed or logged.

    receivers:
      - {name: noc, type: webhook, url: "https://noc.example/hook", secret: "..."}
      - {name: facilities-pd, type: pagerduty, routing_key: "..."}
    route:
      receiver: noc
      routes:
        - {matchers: ['kind=~"ups|pdu|cooling"'], receiver: facilities-pd, escalation: facilities, continue: true}
    inhibit_rules:
      - {source_matchers: ['probable_cause="underlyingResourceUnavailable"'], target_matchers: ['kind="accel"'], equal: [device]}
    users: {alice: {receivers: [alice-mail]}}
    schedules:
      - {name: facilities, rotation: {users: [alice, bob], start: "2026-01-05T09:00:00Z"}}
    escalation_policies:
      - name: facilities
        levels: [{after_s: 600, targets: ["schedule:facilities"]}, {after_s: 1200, targets: ["receiver:noc"]}]
    inbound: {host: 0.0.0.0, port: 9095, token: "env:DCOPS_AM_TOKEN"}   # Alertmanager webhooks in
    console_url: https://dcops.example.net     # links in notifications go to <console_url>/incident/<id>
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator

from dcops.alerts.alarms.matchers import parse_matcher
from dcops.alerts.notification.notifiers.email import EmailConfig
from dcops.alerts.notification.notifiers.pagerduty import PagerDutyConfig
from dcops.alerts.notification.notifiers.slack import SlackConfig
from dcops.alerts.notification.notifiers.webhook import WebhookConfig
from dcops.alarm_types import PerceivedSeverity
from dcops.secrets import Secret
from dcops.yamlconf import ConfigError, load_yaml_text, problems_at, read_config_text

__all__ = ["AlertingConfig", "Route", "load_alerting", "alerting_from_text", "Receiver", "Schedule", "EscalationPolicy"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, hide_input_in_errors=True)


def _matchers(v):
    for m in v:
        parse_matcher(m)
    return tuple(v)


class _Named(_Model):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")


class WebhookReceiver(WebhookConfig, _Named):
    type: Literal["webhook"]


class SlackReceiver(SlackConfig, _Named):
    type: Literal["slack"]


class PagerDutyReceiver(PagerDutyConfig, _Named):
    type: Literal["pagerduty"]


class EmailReceiver(EmailConfig, _Named):
    type: Literal["email"]


Receiver = Annotated[Union[WebhookReceiver, SlackReceiver, PagerDutyReceiver, EmailReceiver], Field(discriminator="type")]


class Route(_Model):
    matchers: tuple[str, ...] = ()
    receiver: str | None = None
    escalation: str | None = None
    continue_: bool = Field(False, alias="continue")
    routes: tuple["Route", ...] = ()

    _m = field_validator("matchers")(classmethod(lambda cls, v: _matchers(v)))


class InhibitRuleConfig(_Model):
    source_matchers: tuple[str, ...] = Field(min_length=1)
    target_matchers: tuple[str, ...] = Field(min_length=1)
    equal: tuple[str, ...] = ()

    _m = field_validator("source_matchers", "target_matchers")(classmethod(lambda cls, v: _matchers(v)))


class User(_Model):
    receivers: tuple[str, ...] = Field(min_length=1)


class Rotation(_Model):
    users: tuple[str, ...] = Field(min_length=1)
    start: datetime = Field(description="First hand-off (ISO 8601, with zone).")
    length_s: float = Field(7 * 86400, gt=0, description="Shift length (a week by default).")


class Override(_Model):
    user: str
    start: datetime
    end: datetime


class Schedule(_Named):
    rotation: Rotation
    overrides: tuple[Override, ...] = ()


class EscalationLevel(_Model):
    after_s: float = Field(ge=0, description="Seconds after the incident opened, if nobody acknowledged.")
    targets: tuple[str, ...] = Field(min_length=1, description="receiver:NAME, schedule:NAME or user:NAME")

    @field_validator("targets")
    @classmethod
    def _form(cls, v):
        for t in v:
            kind, _, name = t.partition(":")
            if kind not in ("receiver", "schedule", "user") or not name:
                raise ValueError(f"target {t!r} must be receiver:NAME, schedule:NAME or user:NAME")
        return v


class EscalationPolicy(_Named):
    levels: tuple[EscalationLevel, ...] = Field(min_length=1)
    repeat: int = Field(0, ge=0, le=10, description="Times to run the levels again after the last one.")


class Grouping(_Model):
    group_wait_s: float = Field(30.0, ge=0, description="Wait before opening an incident, so root and symptoms group.")
    lookback_s: float = Field(900.0, ge=0, description="Kept so existing files validate; causality now uses clock_skew_s.")
    clock_skew_s: float = Field(5.0, ge=0, le=60, description="A root cause may start this much after its symptoms "
                                "(clock skew between collectors), never more.")
    settle_cooling_s: float = Field(900.0, ge=0, le=7200, description="After a cooling root clears, the room takes "
                                    "this long to settle: symptoms that start meanwhile are its recovery, kept on its "
                                    "incident without paging (a few thermal time constants of the air).")
    settle_power_s: float = Field(300.0, ge=0, le=3600, description="The same after a power or device root clears "
                                  "(hosts boot, accelerators rejoin and ramp up their load).")
    sibling_window_s: float = Field(60.0, gt=0, description="Siblings that alarm for the same cause within this "
                                    "window, with nothing upstream alarming, get one synthesised grouping root.")
    incident_min_severity: PerceivedSeverity = PerceivedSeverity.MINOR


class Flapping(_Model):
    window_s: float = Field(600.0, gt=0)
    max_raises: int = Field(3, ge=2)
    hold_s: float = Field(300.0, ge=0)


class OutboxSettings(_Model):
    max_attempts: int = Field(20, ge=1)
    backoff_base_s: float = Field(1.0, gt=0)
    backoff_max_s: float = Field(600.0, gt=0)
    poll_s: float = Field(0.5, gt=0)


class InboundSettings(_Model):
    """The Prometheus Alertmanager webhook endpoint (POST /api/v1/alertmanager)."""

    host: str = "127.0.0.1"
    port: int = Field(9095, ge=0, le=65535)
    token: Secret | None = Field(None, description="Bearer token Alertmanager must send (env:NAME / file:PATH).")


class AlertingConfig(_Model):
    receivers: tuple[Receiver, ...] = ()
    route: Route = Route()
    inhibit_rules: tuple[InhibitRuleConfig, ...] = ()
    users: dict[str, User] = Field(default_factory=dict)
    schedules: tuple[Schedule, ...] = ()
    escalation_policies: tuple[EscalationPolicy, ...] = ()
    grouping: Grouping = Grouping()
    flapping: Flapping = Flapping()
    outbox: OutboxSettings = OutboxSettings()
    inbound: InboundSettings | None = None
    console_url: HttpUrl | None = Field(None, description="Base URL of the dcops console, for links in notifications.")

    def receiver(self, name: str):
        for r in self.receivers:
            if r.name == name:
                return r
        raise KeyError(f"no receiver {name!r}")


def _cross_check(cfg: AlertingConfig) -> list[tuple[tuple, str]]:
    out: list[tuple[tuple, str]] = []
    recv = [r.name for r in cfg.receivers]
    for i, n in enumerate(recv):
        if recv.index(n) != i:
            out.append((("receivers", i, "name"), f"receiver {n!r} is defined twice"))
    recv_set, sched = set(recv), {s.name for s in cfg.schedules}
    pols = {p.name for p in cfg.escalation_policies}

    def walk(route: Route, path: tuple) -> None:
        if route.receiver is not None and route.receiver not in recv_set:
            out.append((path + ("receiver",), f"unknown receiver {route.receiver!r} (have {sorted(recv_set)})"))
        if route.escalation is not None and route.escalation not in pols:
            out.append((path + ("escalation",), f"unknown escalation policy {route.escalation!r} (have {sorted(pols)})"))
        for j, child in enumerate(route.routes):
            walk(child, path + ("routes", j))

    walk(cfg.route, ("route",))
    for u, user in cfg.users.items():
        for j, r in enumerate(user.receivers):
            if r not in recv_set:
                out.append((("users", u, "receivers", j), f"unknown receiver {r!r}"))
    for i, s in enumerate(cfg.schedules):
        for j, u in enumerate(s.rotation.users):
            if u not in cfg.users:
                out.append((("schedules", i, "rotation", "users", j), f"unknown user {u!r} (declare it under users:)"))
        for j, o in enumerate(s.overrides):
            if o.user not in cfg.users:
                out.append((("schedules", i, "overrides", j, "user"), f"unknown user {o.user!r}"))
            if o.end <= o.start:
                out.append((("schedules", i, "overrides", j, "end"), "override ends before it starts"))
    for i, p in enumerate(cfg.escalation_policies):
        for j, lvl in enumerate(p.levels):
            for k, t in enumerate(lvl.targets):
                kind, _, name = t.partition(":")
                known = {"receiver": recv_set, "schedule": sched, "user": set(cfg.users)}[kind]
                if name not in known:
                    out.append((("escalation_policies", i, "levels", j, "targets", k), f"unknown {kind} {name!r}"))
    return out


def alerting_from_text(text: str, file: str = "<string>") -> AlertingConfig:
    cfg, lines = load_yaml_text(text, file, AlertingConfig, empty={})
    problems = _cross_check(cfg)
    if problems:
        raise ConfigError(problems_at(file, lines, problems))
    return cfg


def load_alerting(path: str | Path | None) -> AlertingConfig:
    """Load an alerting config; None gives the defaults (no receivers: alarms and incidents only)."""
    if path is None:
        return AlertingConfig()
    p = Path(path)
    text = read_config_text(p)
    return alerting_from_text(text, str(p))
