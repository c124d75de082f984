"""The simulator's fault library: what each fault targets, what it affects, and its registry.

Every injected fault leaves a ground-truth `FaultLabel` (start, end, affected components) that
tests and the evaluation harness score detectors and correlation against. Each fault type is
an object (`dcops.sim.fault_library`) that checks its target, computes its reach from the
topology, and applies and clears itself through the simulator's public fault interface
(`dcops.sim.controls.FaultControls`). Adding a fault is one class there and one line here.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

from dcops.sim import fault_library as lib
from dcops.sim.fault_library import FaultType
from dcops.sim.labels import FaultLabel
from dcops.topology import Inventory

__all__ = ["FAULT_TYPES", "FaultLabel", "FaultType", "affected_components"]

FAULT_TYPES: Mapping[str, FaultType] = MappingProxyType({f.name: f for f in (
    lib.CracFailure(),
    lib.FanFailure(),
    lib.CloggedFilter(),
    lib.PsuFailure(),
    lib.UpsOnBattery(),
    lib.PduBreakerTrip(),
    lib.GpuEccDbe(),
    lib.GpuXid79(),
    lib.HbmThermalThrottle(),
    lib.NpuThermalThrottle(),
    lib.StuckSensor(),
    lib.UpsOutputLost(),
    lib.CduPumpFailure(),
    lib.CoolantLeak(),
    lib.TorNetworkLoss(),
    lib.CollectorDown(),
)})


def affected_components(inv: Inventory, fault_type: str, target: str) -> tuple[str, ...]:
    return FAULT_TYPES[fault_type].affected(inv, target)
