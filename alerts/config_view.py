"""A read-only, secret-free view of the alerting config for operators (the console's Admin page).

Receivers show where they deliver without their secrets (webhook host and path, Slack channel,
PagerDuty service key hidden, e-mail recipients); routes are flattened with their depth; each
on-call schedule says who holds it now.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from dcops.alerts.config import AlertingConfig, Route
from dcops.alerts.notification.oncall import on_call

__all__ = ["ReceiverView", "RouteView", "OnCallView", "receivers_view", "routes_view", "oncall_view"]


@dataclass(frozen=True)
class ReceiverView:
    name: str
    type: str
    destination: str
    signed: bool


@dataclass(frozen=True)
class RouteView:
    depth: int
    matchers: str
    receiver: str
    escalation: str
    continues: bool


@dataclass(frozen=True)
class OnCallView:
    schedule: str
    on_call: str
    receivers: str


def _where(url: str) -> str:
    u = urlsplit(str(url))
    return f"{u.scheme}://{u.hostname or ''}{':' + str(u.port) if u.port else ''}{u.path}"


def receivers_view(cfg: AlertingConfig) -> list[ReceiverView]:
    out = []
    for r in cfg.receivers:
        if r.type == "webhook":
            dest, signed = _where(r.url), r.secret is not None
        elif r.type == "slack":
            dest, signed = f"Slack {r.channel or '(webhook default channel)'}", False
        elif r.type == "pagerduty":
            dest, signed = f"PagerDuty Events v2 at {_where(r.url)} (routing key hidden)", False
        else:
            dest, signed = f"e-mail to {', '.join(r.to)} via {r.host}:{r.port}", False
        out.append(ReceiverView(r.name, r.type, dest, signed))
    return out


def routes_view(cfg: AlertingConfig) -> list[RouteView]:
    out: list[RouteView] = []

    def walk(route: Route, depth: int, inherited: str) -> None:
        receiver = route.receiver or inherited
        out.append(RouteView(depth, ", ".join(route.matchers) or "(everything)", receiver or "-",
                             route.escalation or "", route.continue_))
        for child in route.routes:
            walk(child, depth + 1, receiver or "")

    walk(cfg.route, 0, "")
    return out


def oncall_view(cfg: AlertingConfig, t_ns: int) -> list[OnCallView]:
    out = []
    for s in cfg.schedules:
        user = on_call(s, t_ns)
        out.append(OnCallView(s.name, user, ", ".join(cfg.users[user].receivers) if user in cfg.users else "-"))
    return out
