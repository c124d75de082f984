"""The ground truth an injected fault leaves behind."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

__all__ = ["FaultLabel"]


@dataclass(frozen=True)
class FaultLabel:
    fault_id: str
    fault_type: str
    target: str
    start_ns: int
    end_ns: int | None
    affected: tuple[str, ...]
    params: Mapping[str, object] = field(default_factory=dict)

    def active_at(self, t_ns: int) -> bool:
        return self.start_ns <= t_ns and (self.end_ns is None or t_ns < self.end_ns)

    def to_dict(self) -> dict:
        return {"fault_id": self.fault_id, "fault_type": self.fault_type, "target": self.target,
                "start_ns": self.start_ns, "end_ns": self.end_ns, "affected": list(self.affected),
                "params": dict(self.params)}
