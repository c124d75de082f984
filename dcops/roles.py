"""The roles `dcops up` can run, each a long-running service: name -> "module:function".

Every role function has the signature `run_role(cfg: SiteConfig, stop: threading.Event)` and
returns when `stop` is set (after flushing and closing what it opened). Modules are imported only
when the role is started, so one stage that is missing or broken cannot stop the others from
running, and `dcops up` can say exactly which role is not available and why.
"""

from __future__ import annotations

import importlib
from types import MappingProxyType
from typing import Callable

__all__ = ["ROLES", "RoleUnavailable", "resolve", "unavailable"]

ROLES = MappingProxyType({
    "poller": "dcops.collectors.snmp_poller:run_role",
    "traps": "dcops.collectors.snmp_traps:run_role",
    "agent": "dcops.collectors.agent_cli:run_role",
    "redfish": "dcops.collectors.redfish_role:run_role",
    "ingest": "dcops.ingest:run_role",
    "analytics": "dcops.analytics.service:run_role",
    "alerter": "dcops.alerts.service:run_role",
    "console": "dcops.console.app:run_role",
})


class RoleUnavailable(RuntimeError):
    """A role is unknown or its module/function cannot be imported; the text says which and why."""


def resolve(name: str) -> Callable:
    """The role's `run_role` function (imports its module now)."""
    try:
        target = ROLES[name]
    except KeyError:
        raise RoleUnavailable(f"unknown role {name!r} (known: {', '.join(ROLES)})") from None
    module, _, func = target.partition(":")
    try:
        mod = importlib.import_module(module)
    except Exception as exc:
        raise RoleUnavailable(f"role {name!r}: cannot import {module} ({type(exc).__name__}: {exc})") from exc
    fn = getattr(mod, func, None)
    if not callable(fn):
        raise RoleUnavailable(f"role {name!r}: {module} has no function {func}()")
    return fn


def unavailable(names) -> dict[str, str]:
    """{role: reason} for each of `names` that cannot be started."""
    out = {}
    for n in names:
        try:
            resolve(n)
        except RoleUnavailable as exc:
            out[n] = str(exc)
    return out
