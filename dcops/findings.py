"""Findings: what the analytics stage tells the alerts stage.

A finding says "this component looks abnormal to this detector, this much, because of these
features". Alert rules turn findings above a score into alarms.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping, Sequence

__all__ = ["Contribution", "Finding", "encode_findings", "decode_findings"]

FINDINGS_MAGIC = b"DCF1"


@dataclass(frozen=True)
class Contribution:
    """One feature's part in a finding: what was expected and what was observed."""

    feature: str
    observed: float
    expected: float
    weight: float = 1.0


@dataclass(frozen=True)
class Finding:
    time_ns: int
    component: str  # inventory name: accelerator id "<server>:<i>", rack, CRAC, ...
    target: Mapping[str, str]  # topology tags
    detector: str  # e.g. "thermal_residual", "peer_group", "univariate", "isolation_forest", "counter_trend"
    score: float  # 0..1, higher is more abnormal
    explanation: str = ""
    contributions: tuple[Contribution, ...] = ()
    attributes: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "target", MappingProxyType(dict(self.target)))
        object.__setattr__(self, "attributes", MappingProxyType(dict(self.attributes)))
        object.__setattr__(self, "contributions", tuple(self.contributions))

    def to_dict(self) -> dict:
        return {
            "time_ns": int(self.time_ns), "component": self.component, "target": dict(self.target),
            "detector": self.detector, "score": float(self.score), "explanation": self.explanation,
            "contributions": [c.__dict__ for c in self.contributions], "attributes": dict(self.attributes),
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> "Finding":
        return cls(
            time_ns=int(d["time_ns"]), component=str(d["component"]), target=dict(d.get("target") or {}),
            detector=str(d["detector"]), score=float(d["score"]), explanation=str(d.get("explanation", "")),
            contributions=tuple(Contribution(**c) for c in d.get("contributions") or ()),
            attributes=dict(d.get("attributes") or {}),
        )


def encode_findings(findings: Sequence[Finding]) -> bytes:
    return FINDINGS_MAGIC + "\n".join(json.dumps(f.to_dict(), separators=(",", ":")) for f in findings).encode()


def decode_findings(data: bytes) -> list[Finding]:
    from dcops.codec import CodecError

    if bytes(data[:4]) != FINDINGS_MAGIC:
        raise CodecError("not a findings frame (bad magic)")
    out = []
    for i, line in enumerate(bytes(data[4:]).decode().split("\n")):
        if line:
            try:
                out.append(Finding.from_dict(json.loads(line)))
            except (ValueError, KeyError, TypeError) as exc:
                raise CodecError(f"finding {i} unreadable: {exc}") from None
    return out
