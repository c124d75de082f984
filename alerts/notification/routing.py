"""Routing: which receivers (and escalation policy) an incident goes to, Alertmanager style.

The route tree is walked depth first from the root (which matches everything). A child whose
matchers all match is taken; unless it says `continue: true`, its later siblings are not
tried. A node with no matching child is a result; receiver and escalation are inherited from
the parent when a node leaves them out.
"""

from __future__ import annotations

from typing import Mapping, NamedTuple

from dcops.alerts.config import Route
from dcops.alerts.alarms.matchers import matches_all, parse_matchers

__all__ = ["RouteMatch", "match_routes"]


class RouteMatch(NamedTuple):
    receiver: str
    escalation: str | None


def match_routes(route: Route, labels: Mapping[str, str], _receiver: str | None = None,
                 _escalation: str | None = None) -> list[RouteMatch]:
    recv = route.receiver or _receiver
    esc = route.escalation or _escalation
    out: list[RouteMatch] = []
    for child in route.routes:
        if matches_all(parse_matchers(child.matchers), labels):
            out.extend(match_routes(child, labels, recv, esc))
            if not child.continue_:
                break
    if not out and recv:
        out.append(RouteMatch(recv, esc))
    seen, uniq = set(), []
    for m in out:
        if m not in seen:
            seen.add(m)
            uniq.append(m)
    return uniq
