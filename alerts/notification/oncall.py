"""On-call schedules: weekly (or any length) rotations with overrides.

`on_call(schedule, t)` is who holds the pager at time t: the most recently declared override
covering t, else the rotation's user for the shift containing t. Shifts start at
`rotation.start` and last `length_s` (a week by default); before the start the rotation runs
backwards, so every instant has someone on call.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone

from dcops.alerts.config import AlertingConfig, Schedule

__all__ = ["on_call", "receivers_for_target"]

_NS = 1_000_000_000


def _ts(dt: datetime) -> float:
    return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp()


def on_call(schedule: Schedule, t_ns: int) -> str:
    t = t_ns / _NS
    for o in reversed(schedule.overrides):
        if _ts(o.start) <= t < _ts(o.end):
            return o.user
    rot = schedule.rotation
    shift = math.floor((t - _ts(rot.start)) / rot.length_s)
    return rot.users[shift % len(rot.users)]


def receivers_for_target(cfg: AlertingConfig, target: str, t_ns: int) -> tuple[tuple[str, ...], str | None]:
    """Receivers for an escalation target (`receiver:X`, `user:X`, `schedule:X`) and the user
    it resolved to (None for a bare receiver)."""
    kind, _, name = target.partition(":")
    if kind == "receiver":
        return (name,), None
    if kind == "user":
        return cfg.users[name].receivers, name
    if kind == "schedule":
        sched = next(s for s in cfg.schedules if s.name == name)
        user = on_call(sched, t_ns)
        return cfg.users[user].receivers, user
    raise ValueError(f"bad escalation target {target!r}")
