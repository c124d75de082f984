"""What each fault does to the simulated site when it starts (`on`) and ends: the fault
library's physics, one branch per fault type of `dcops.sim.faults.FAULT_TYPES`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dcops.batch import Severity
from dcops.sim.faults import FaultLabel

if TYPE_CHECKING:  # pragma: no cover
    from dcops.sim.engine import Simulator

__all__ = ["apply_fault", "STUCK_DEFAULT"]

STUCK_DEFAULT = {"accel": "accel_temp_degc", "rack": "rack_inlet_temp_degc", "env": "env_temp_degc",
                "cooling": "cooling_supply_temp_degc"}


def apply_fault(sim: "Simulator", label: FaultLabel, on: bool) -> None:
    inv = sim.inventory
    comp = inv.get(label.target)
    ft = label.fault_type
    if ft in ("crac_failure", "clogged_filter"):
        c = sim._ci[comp.name]
        if ft == "crac_failure":
            sim.c_running[c] = not on
            sim._emit("cooling_fault" if on else "cooling_recovered", comp,
                      Severity.MAJOR if on else Severity.CLEARED,
                      f"{comp.name} {'stopped' if on else 'running again'}", {"unit": comp.name})
        elif on:
            sim._clog[c] = label
        else:
            sim._clog.pop(c, None)
            sim.c_filter[c] = 1.0
    elif ft == "fan_failure":
        sim.s_fan_ok[sim._si[comp.name]] = not on
    elif ft == "psu_failure":
        j = "AB".index(str(label.params.get("psu", "A")))
        sim.s_psu_ok[sim._si[comp.name], j] = not on
        sim._emit("psu_fault" if on else "psu_recovered", comp, Severity.MAJOR if on else Severity.CLEARED,
                  f"PSU {'AB'[j]} of {comp.name} {'failed' if on else 'recovered'}", {"psu": "AB"[j]})
    elif ft == "ups_on_battery":
        u = sim._ui_ups[comp.name]
        sim.u_battery[u] = on
        sim._emit("ups_on_battery" if on else "ups_on_utility", comp, Severity.MAJOR if on else Severity.CLEARED,
                  f"{comp.name} {'on battery' if on else 'back on utility'}", {})
    elif ft == "pdu_breaker_trip":
        sim.p_closed[sim._pi[comp.name]] = not on
        sim._emit("breaker_trip" if on else "breaker_closed", comp, Severity.CRITICAL if on else Severity.CLEARED,
                  f"{comp.name} breaker {'tripped' if on else 'closed'}", {"racks": list(inv.racks_of_pdu.get(comp.name, ()))})
    elif ft == "gpu_ecc_dbe":
        i = inv.accel_index[comp.name]
        if on:
            k = int(sim.rng.integers(1, 4))
            sim.ecc_uncorr[i] += k
            sim.ecc_vol_uncorr[i] += k
            sim.remap_uncorr[i] += 1
            sim.remap_pending[i] = 1
            sim._xid(i, 48, "Double Bit ECC Error")
            sim._xid(i, 63, "Row remapping pending")
        else:
            sim.remap_pending[i] = 0
    elif ft == "gpu_xid79":
        i = inv.accel_index[comp.name]
        sim.lost[i] = on
        if on:
            sim._xid(i, 79, "GPU has fallen off the bus")
            sim._emit("accel_lost", comp, Severity.CRITICAL, f"{comp.name} fell off the bus", {"xid": 79})
        else:
            sim._emit("accel_recovered", comp, Severity.CLEARED, f"{comp.name} answers again", {})
    elif ft == "hbm_thermal_throttle":
        sim.hbm_extra[inv.accel_index[comp.name]] = 52.0 if on else 0.0
    elif ft == "npu_thermal_throttle":
        sim.rth_factor[inv.accel_index[comp.name]] = 3.5 if on else 1.0
    elif ft == "stuck_sensor":
        metric = str(label.params.get("metric") or STUCK_DEFAULT[comp.kind])
        if on:
            sim._stuck[(comp.name, metric)] = None  # frozen at the next reading
        else:
            sim._stuck.pop((comp.name, metric), None)
