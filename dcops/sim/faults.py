"""The simulator's fault library, as data: what each fault targets and what it affects.

Every injected fault leaves a ground-truth `FaultLabel` (start, end, affected components) that
tests and the evaluation harness score detectors and correlation against.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Callable, Mapping

from dcops.topology import Inventory

__all__ = ["FAULT_TYPES", "FaultLabel", "FaultType", "affected_components"]


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


def _cooling_reach(inv: Inventory, unit: str) -> tuple[str, ...]:
    zones = [z for z in inv.children(unit) if inv.get(z).kind == "zone"]
    out = [unit, *zones]
    for z in zones:
        for row in inv.rows_of_zone[z]:
            out.append(row)
            out.extend(r.name for r in inv.racks if r.row == row)
    return tuple(out)


def _power_reach(inv: Inventory, name: str) -> tuple[str, ...]:
    """The component, the PDUs under it and the racks they feed (servers/accels excluded)."""
    out = [name]
    pdus = [name] if inv.get(name).kind == "pdu" else [c for c in inv.children(name) if inv.get(c).kind == "pdu"]
    if inv.get(name).kind != "pdu":
        out.extend(pdus)
    for p in pdus:
        out.extend(inv.racks_of_pdu.get(p, ()))
    return tuple(dict.fromkeys(out))


def _server_reach(inv: Inventory, server: str) -> tuple[str, ...]:
    return (server, *sorted(c for c in inv.children(server)))


def _accel_reach(inv: Inventory, accel: str) -> tuple[str, ...]:
    return (accel, inv.get(accel).device)


def _self(inv: Inventory, name: str) -> tuple[str, ...]:
    return (name,)


@dataclass(frozen=True)
class FaultType:
    name: str
    target_kinds: tuple[str, ...]
    description: str
    abrupt: bool
    default_duration_s: float
    affected: Callable[[Inventory, str], tuple[str, ...]]
    vendor: str | None = None  # for accelerator faults: the vendor it applies to


FAULT_TYPES: Mapping[str, FaultType] = MappingProxyType({f.name: f for f in (
    FaultType("crac_failure", ("cooling",), "A CRAC/CDU stops: its zone loses capacity and airflow.", True, 1800, _cooling_reach),
    FaultType("fan_failure", ("server",), "A server's fans fail: its accelerators run hot and throttle.", True, 1200, _server_reach),
    FaultType("clogged_filter", ("cooling",), "A cooling unit's filter clogs slowly: capacity drifts down.", False, 6 * 3600, _cooling_reach),
    FaultType("psu_failure", ("server",), "One server PSU fails: the other carries the load (redundancy lost).", True, 1800, _self),
    FaultType("ups_on_battery", ("ups",), "Utility lost at a UPS: load runs on battery until it returns or the battery is empty.", True, 300, _power_reach),
    FaultType("pdu_breaker_trip", ("pdu",), "A floor PDU breaker trips: the racks it feeds lose that feed.", True, 1800, _power_reach),
    FaultType("gpu_ecc_dbe", ("accel",), "Double-bit ECC errors on a GPU (XID 48), rows remapped.", True, 1800, _accel_reach, "nvidia"),
    FaultType("gpu_xid79", ("accel",), "A GPU falls off the bus (XID 79): it stops answering.", True, 1800, _accel_reach, "nvidia"),
    FaultType("hbm_thermal_throttle", ("accel",), "A GPU's HBM overheats and the GPU throttles.", True, 1200, _accel_reach, "nvidia"),
    FaultType("npu_thermal_throttle", ("accel",), "An NPU overheats (heatsink/airflow) and throttles.", True, 1200, _accel_reach, "rebellions"),
    FaultType("stuck_sensor", ("accel", "rack", "env", "cooling"), "A sensor keeps reporting one value.", True, 3600, _self),
)})


def affected_components(inv: Inventory, fault_type: str, target: str) -> tuple[str, ...]:
    return FAULT_TYPES[fault_type].affected(inv, target)
