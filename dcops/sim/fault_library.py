"""The fault types: one class each, acting on the simulator only through `FaultControls`.

A fault type declares what it targets (`target_kinds`, `vendor`, and `check` for anything
finer, e.g. "a CDU"), what it reaches (`affected`, from the topology: the ground truth the
evaluation scores against), and what it does when it starts (`apply`) and ends (`clear`).
Register a new one in `dcops.sim.faults.FAULT_TYPES`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

from dcops.batch import Severity
from dcops.sim.labels import FaultLabel
from dcops.topology import Component, Inventory

if TYPE_CHECKING:  # pragma: no cover
    from dcops.sim.controls import FaultControls

__all__ = ["FaultType", "STUCK_DEFAULT", "FACILITY_KINDS"]

STUCK_DEFAULT = {"accel": "accel_temp_degc", "rack": "rack_inlet_temp_degc", "env": "env_temp_degc",
                 "cooling": "cooling_supply_temp_degc"}
FACILITY_KINDS = ("ups", "pdu", "cooling", "env")  # devices polled over SNMP


# ----- reach: what a fault on a target affects, from the topology ------------------------------
def cooling_reach(inv: Inventory, unit: str) -> tuple[str, ...]:
    """The unit, its zones, their rows and the racks in them."""
    zones = sorted(z for z in inv.children(unit) if inv.get(z).kind == "zone")
    out = [unit, *zones]
    for z in zones:
        for row in inv.rows_of_zone[z]:
            out.append(row)
            out.extend(r.name for r in inv.racks if r.row == row)
    return tuple(out)


def power_reach(inv: Inventory, name: str) -> tuple[str, ...]:
    """The component, the PDUs under it and the racks they feed (servers/accels excluded)."""
    out = [name]
    pdus = [name] if inv.get(name).kind == "pdu" else sorted(c for c in inv.children(name) if inv.get(c).kind == "pdu")
    if inv.get(name).kind != "pdu":
        out.extend(pdus)
    for p in pdus:
        out.extend(inv.racks_of_pdu.get(p, ()))
    return tuple(dict.fromkeys(out))


def server_reach(inv: Inventory, server: str) -> tuple[str, ...]:
    return (server, *sorted(inv.children(server)))


def accel_reach(inv: Inventory, accel: str) -> tuple[str, ...]:
    return (accel, inv.get(accel).device)


def rack_telemetry_reach(inv: Inventory, rack: str) -> tuple[str, ...]:
    """Everything that reports through a rack's top-of-rack switch: the rack, its servers and
    accelerators, its rack PDUs and its probes."""
    inside = sorted(c.name for c in inv.components.values()
                    if c.rack == rack and c.name != rack and c.kind in ("server", "accel", "rack_pdu", "env"))
    return (rack, *inside)


# ----- the base ---------------------------------------------------------------------------------
class FaultType(ABC):
    """One kind of fault. Subclasses set the class attributes and override `apply`/`clear`."""

    name: ClassVar[str]
    target_kinds: ClassVar[tuple[str, ...]]
    description: ClassVar[str]
    abrupt: ClassVar[bool] = True
    default_duration_s: ClassVar[float] = 1800.0
    vendor: ClassVar[str | None] = None  # for accelerator faults: the vendor it applies to

    def check(self, inv: Inventory, comp: Component) -> None:
        """Raise ValueError, saying why, when `comp` cannot take this fault."""
        if comp.kind not in self.target_kinds:
            raise ValueError(f"{self.name} targets {self.target_kinds}, but {comp.name!r} is a {comp.kind}")
        if self.vendor and comp.attrs.get("vendor") != self.vendor:
            raise ValueError(f"{self.name} applies to {self.vendor} accelerators; {comp.name!r} is {comp.attrs.get('vendor')}")

    def targets(self, inv: Inventory) -> list[str]:
        """Every component of the site this fault can be injected on."""
        out = []
        for c in inv.components.values():
            try:
                self.check(inv, c)
            except ValueError:
                continue
            out.append(c.name)
        return out

    def affected(self, inv: Inventory, target: str) -> tuple[str, ...]:
        return (target,)

    @abstractmethod
    def apply(self, sim: "FaultControls", label: FaultLabel) -> None:
        """Start the fault on the simulator through its public controls."""

    @abstractmethod
    def clear(self, sim: "FaultControls", label: FaultLabel) -> None:
        """End the fault: the controls back as they were."""

    def __repr__(self) -> str:
        return f"<fault type {self.name}>"


class _CoolingFault(FaultType):
    target_kinds = ("cooling",)

    def affected(self, inv, target):
        return cooling_reach(inv, target)


class _CduFault(_CoolingFault):
    """Faults of a liquid-cooling CDU: the target must be a cooling unit of kind `cdu`."""

    def check(self, inv, comp):
        super().check(inv, comp)
        if comp.attrs.get("unit_kind") != "cdu":
            cdus = sorted(c.name for c in inv.of_kind("cooling") if c.attrs.get("unit_kind") == "cdu")
            have = f"this site's CDUs: {', '.join(cdus)}" if cdus else f"site {inv.site!r} has no CDU (cooling unit of kind cdu)"
            raise ValueError(f"{self.name} targets a liquid-cooling CDU; {comp.name!r} is a "
                             f"{comp.attrs.get('unit_kind', comp.kind)} ({have})")


class _AccelFault(FaultType):
    target_kinds = ("accel",)
    default_duration_s = 1800.0

    def affected(self, inv, target):
        return accel_reach(inv, target)


# ----- the library ------------------------------------------------------------------------------
class CracFailure(_CoolingFault):
    name = "crac_failure"
    description = "A CRAC/CDU stops: its zone loses capacity and airflow."

    def apply(self, sim, label):
        sim.set_cooling_running(label.target, False)
        sim.emit("cooling_fault", label.target, Severity.MAJOR, f"{label.target} stopped", {"unit": label.target})

    def clear(self, sim, label):
        sim.set_cooling_running(label.target, True)
        sim.emit("cooling_recovered", label.target, Severity.CLEARED, f"{label.target} running again", {"unit": label.target})


class CloggedFilter(_CoolingFault):
    name = "clogged_filter"
    description = "A cooling unit's filter clogs slowly: capacity drifts down."
    abrupt = False
    default_duration_s = 6 * 3600.0

    def check(self, inv, comp):
        super().check(inv, comp)
        if comp.attrs.get("unit_kind") == "cdu":
            raise ValueError(f"{self.name}: {comp.name!r} is a CDU, which has no air filter")

    def apply(self, sim, label):
        sim.set_filter_clogging(label.target, label)

    def clear(self, sim, label):
        sim.set_filter_clogging(label.target, None)  # the filter is changed


class FanFailure(FaultType):
    name = "fan_failure"
    target_kinds = ("server",)
    description = "A server's fans fail: its accelerators run hot and throttle."
    default_duration_s = 1200.0

    def affected(self, inv, target):
        return server_reach(inv, target)

    def apply(self, sim, label):
        sim.set_server_fans(label.target, False)
        sim.emit("fan_fault", label.target, Severity.MAJOR, f"fans of {label.target} failed", {"fan": "Fan1"})

    def clear(self, sim, label):
        sim.set_server_fans(label.target, True)
        sim.emit("fan_recovered", label.target, Severity.CLEARED, f"fans of {label.target} run again", {"fan": "Fan1"})


class PsuFailure(FaultType):
    name = "psu_failure"
    target_kinds = ("server",)
    description = "One server PSU fails: the other carries the load (redundancy lost)."

    def _feed(self, label):
        return str(label.params.get("psu", "A"))

    def apply(self, sim, label):
        f = self._feed(label)
        sim.set_psu(label.target, f, False)
        sim.emit("psu_fault", label.target, Severity.MAJOR, f"PSU {f} of {label.target} failed", {"psu": f})

    def clear(self, sim, label):
        f = self._feed(label)
        sim.set_psu(label.target, f, True)
        sim.emit("psu_recovered", label.target, Severity.CLEARED, f"PSU {f} of {label.target} recovered", {"psu": f})


class UpsOnBattery(FaultType):
    name = "ups_on_battery"
    target_kinds = ("ups",)
    description = "Utility lost at a UPS: load runs on battery until it returns or the battery is empty."
    default_duration_s = 300.0

    def affected(self, inv, target):
        return power_reach(inv, target)

    def apply(self, sim, label):
        sim.set_utility(label.target, False)
        sim.emit("ups_on_battery", label.target, Severity.MAJOR, f"{label.target} on battery", {})

    def clear(self, sim, label):
        sim.set_utility(label.target, True)
        sim.emit("ups_on_utility", label.target, Severity.CLEARED, f"{label.target} back on utility", {})


class UpsOutputLost(FaultType):
    name = "ups_output_lost"
    target_kinds = ("ups",)
    description = "A UPS drops its load (inverter/output fault): its PDUs go dead, racks lose that feed."

    def affected(self, inv, target):
        return power_reach(inv, target)

    def apply(self, sim, label):
        sim.set_ups_output(label.target, False)
        sim.emit("ups_output_off", label.target, Severity.CRITICAL, f"{label.target} output off: load dropped", {})

    def clear(self, sim, label):
        sim.set_ups_output(label.target, True)
        sim.emit("ups_output_on", label.target, Severity.CLEARED, f"{label.target} output restored", {})


class PduBreakerTrip(FaultType):
    name = "pdu_breaker_trip"
    target_kinds = ("pdu",)
    description = "A floor PDU breaker trips: the racks it feeds lose that feed."

    def affected(self, inv, target):
        return power_reach(inv, target)

    def apply(self, sim, label):
        sim.set_breaker(label.target, False)
        racks = list(sim.inventory.racks_of_pdu.get(label.target, ()))
        sim.emit("breaker_trip", label.target, Severity.CRITICAL, f"{label.target} breaker tripped", {"racks": racks})

    def clear(self, sim, label):
        sim.set_breaker(label.target, True)
        racks = list(sim.inventory.racks_of_pdu.get(label.target, ()))
        sim.emit("breaker_closed", label.target, Severity.CLEARED, f"{label.target} breaker closed", {"racks": racks})


class GpuEccDbe(_AccelFault):
    name = "gpu_ecc_dbe"
    description = "Double-bit ECC errors on a GPU (XID 48), rows remapped."
    vendor = "nvidia"

    def apply(self, sim, label):
        sim.ecc_double_bit(label.target)

    def clear(self, sim, label):
        sim.clear_remap_pending(label.target)


class GpuXid79(_AccelFault):
    name = "gpu_xid79"
    description = "A GPU falls off the bus (XID 79): it stops answering."
    vendor = "nvidia"

    def apply(self, sim, label):
        sim.set_accel_lost(label.target, True)
        sim.xid(label.target, 79, "GPU has fallen off the bus")
        sim.emit("accel_lost", label.target, Severity.CRITICAL, f"{label.target} fell off the bus", {"xid": 79})

    def clear(self, sim, label):
        sim.set_accel_lost(label.target, False)
        sim.emit("accel_recovered", label.target, Severity.CLEARED, f"{label.target} answers again", {})


class HbmThermalThrottle(_AccelFault):
    name = "hbm_thermal_throttle"
    description = "A GPU's HBM overheats and the GPU throttles."
    default_duration_s = 1200.0
    vendor = "nvidia"

    def apply(self, sim, label):
        sim.set_hbm_heating(label.target, 52.0)

    def clear(self, sim, label):
        sim.set_hbm_heating(label.target, 0.0)


class NpuThermalThrottle(_AccelFault):
    name = "npu_thermal_throttle"
    description = "An NPU overheats (heatsink/airflow) and throttles."
    default_duration_s = 1200.0
    vendor = "rebellions"

    def apply(self, sim, label):
        sim.set_heatsink_factor(label.target, 3.5)

    def clear(self, sim, label):
        sim.set_heatsink_factor(label.target, 1.0)


class StuckSensor(FaultType):
    name = "stuck_sensor"
    target_kinds = tuple(STUCK_DEFAULT)
    description = "A sensor keeps reporting one value."
    default_duration_s = 3600.0

    def _metric(self, sim, label) -> str:
        return str(label.params.get("metric") or STUCK_DEFAULT[sim.inventory.get(label.target).kind])

    def apply(self, sim, label):
        sim.freeze_sensor(label.target, self._metric(sim, label))

    def clear(self, sim, label):
        sim.release_sensor(label.target, self._metric(sim, label))


class CduPumpFailure(_CduFault):
    name = "cdu_pump_failure"
    description = "A liquid-cooling CDU's pumps stop: no coolant flow, the racks it serves heat up."

    # the CDU keeps running (its controller answers): the loss shows as flow in its telemetry

    def apply(self, sim, label):
        sim.set_pump(label.target, False)

    def clear(self, sim, label):
        sim.set_pump(label.target, True)


class CoolantLeak(_CduFault):
    name = "coolant_leak"
    description = "A CDU's secondary loop leaks: level and pressure fall, the leak sensor trips; once low, the pumps cavitate."

    def apply(self, sim, label):
        sim.set_leak(label.target, float(label.params.get("rate_pct_per_min", 4.0)) / 60.0)

    def clear(self, sim, label):
        sim.set_leak(label.target, 0.0)  # leak isolated and the loop refilled


class TorNetworkLoss(FaultType):
    name = "tor_network_loss"
    target_kinds = ("rack",)
    description = "A rack's top-of-rack switch dies: servers keep running, but no telemetry leaves the rack."

    def affected(self, inv, target):
        return rack_telemetry_reach(inv, target)

    def apply(self, sim, label):
        sim.cut_telemetry(label.fault_id, self.affected(sim.inventory, label.target))

    def clear(self, sim, label):
        sim.restore_telemetry(label.fault_id)


class CollectorDown(FaultType):
    name = "collector_down"
    target_kinds = (*FACILITY_KINDS, "server")
    description = ("The SNMP agent of a facility device, or a server's accelerator agent, dies: "
                   "its readings go stale while the equipment runs on.")

    def check(self, inv, comp):
        super().check(inv, comp)
        if comp.kind == "server" and not inv.children(comp.name):
            raise ValueError(f"{self.name}: server {comp.name!r} has no accelerators, so no agent to lose")

    def affected(self, inv, target):
        comp = inv.get(target)
        return server_reach(inv, target) if comp.kind == "server" else (target,)

    def apply(self, sim, label):
        comp = sim.inventory.get(label.target)
        names = self.affected(sim.inventory, label.target)
        # a server's agent reports its accelerators; the server's BMC still answers
        sim.cut_telemetry(label.fault_id, names[1:] if comp.kind == "server" else names)

    def clear(self, sim, label):
        sim.restore_telemetry(label.fault_id)
