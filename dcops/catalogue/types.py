"""Types of the metric catalogue."""

from __future__ import annotations

import enum
from dataclasses import dataclass

# Canonical units. Everything stored is in one of these; collectors convert at the edge.
CANONICAL_UNITS = frozenset(
    {"W", "VA", "VAR", "A", "V", "Hz", "degC", "%RH", "%", "s", "Wh", "J", "MHz", "bytes",
     "count", "state", "rpm", "Pa", "m3/h", "l/min", "kPa"}
)


class Kind(str, enum.Enum):
    GAUGE = "gauge"
    COUNTER = "counter"
    STATE = "state"


@dataclass(frozen=True)
class Measurement:
    """A group of fields written together for one kind of thing, with its identifying tags."""

    name: str
    tags: tuple[str, ...]
    description: str


@dataclass(frozen=True)
class Metric:
    name: str
    measurement: str
    unit: str
    kind: Kind
    description: str
    sources: tuple[str, ...] = ()
    states: tuple[tuple[int, str], ...] = ()  # for Kind.STATE: code -> label
    valid: tuple[float, float] | None = None  # physically possible range; None: the unit's (dcops.validate)

    def __post_init__(self) -> None:
        if self.unit not in CANONICAL_UNITS:
            raise ValueError(f"metric {self.name!r}: unit {self.unit!r} is not canonical")
        if self.kind is Kind.COUNTER and not self.name.endswith("_total"):
            raise ValueError(f"counter {self.name!r} must end in _total")
        if not self.name.startswith(self.measurement + "_"):
            raise ValueError(f"metric {self.name!r} must start with its measurement {self.measurement!r}")
