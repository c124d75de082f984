"""`AlarmSignal`: what a rule (or an external alerting system) says about one component.

A signal is level-based: `active=True` means "the condition holds now", `active=False` "it is
over". The alarm manager turns signals into alarms (dedup, flapping, lifecycle), so
evaluators stay simple and restart-safe.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

import numpy as np

from dcops.alarm_types import EventType, PerceivedSeverity, ProbableCause

__all__ = ["AlarmSignal", "component_of", "components_of_batch", "safe_format"]


@dataclass(frozen=True)
class AlarmSignal:
    time_ns: int
    component: str
    rule: str
    active: bool
    severity: PerceivedSeverity
    event_type: EventType
    probable_cause: ProbableCause
    specific_problem: str = ""
    additional_text: str = ""
    repair_actions: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", MappingProxyType(dict(self.labels)))


def component_of(tags: Mapping[str, str]) -> str:
    """Inventory name of the thing a row or event is about: accelerator `<server>:<i>`,
    else device, rack, row, hall, site (the most specific tag present)."""
    dev = tags.get("device") or ""
    acc = tags.get("accel") or ""
    if dev and acc != "":
        return f"{dev}:{acc}"
    for k in ("device", "rack", "row", "hall", "site"):
        v = tags.get(k)
        if v:
            return str(v)
    return ""


def components_of_batch(tags: Mapping[str, np.ndarray], n: int) -> np.ndarray:
    """Vectorised `component_of` over a batch's tag columns (object array of names)."""
    out = np.full(n, "", dtype=object)
    filled = np.zeros(n, dtype=bool)
    dev = tags.get("device")
    acc = tags.get("accel")
    if dev is not None and acc is not None:
        m = (dev != "") & (acc != "")
        if m.any():
            out[m] = dev[m] + ":" + acc[m]
            filled |= m
    for k in ("device", "rack", "row", "hall", "site"):
        col = tags.get(k)
        if col is None:
            continue
        m = ~filled & (col != "")
        out[m] = col[m]
        filled |= m
    return out


def safe_format(template: str, **values) -> str:
    """Fill named fields only (`dcops.templates.render`): unknown placeholders and attribute or
    index access (`{component.__class__}`) stay as written; never raises."""
    from dcops.templates import render

    return render(template, values)
