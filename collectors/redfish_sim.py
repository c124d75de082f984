"""The simulator's servers as Redfish BMCs: a resource tree built from the simulated state, behind
the same `fetch(path)` interface the collector reads real BMCs through (`RedfishPoller(connect=)`).

Each server has one chassis `1` in the current model: `PowerSubsystem/PowerSupplies/Bay<n>`
(one bay per PSU, bay n on the n-th feed the server names: Bay1 = A, Bay2 = B) with `Metrics`,
`ThermalSubsystem/Fans/Fan1..4`, `EnvironmentMetrics` (chassis power) and `Sensors` (intake and
exhaust temperatures). A failed PSU answers Health Critical; a PSU whose feed is dead answers
`LineInputStatus: LossOfInput` with Health Warning (the PSU is fine, its input is not); a failed
fan reads 0 % with Health Critical. A server whose feeds are all dead has no standby power: its
BMC does not answer.
"""

from __future__ import annotations

import math

from dcops.collectors.redfish_client import BmcTarget, BmcUnavailable

__all__ = ["SimBmc", "sim_connect"]

_FEEDS = "AB"
_FANS = 4
_BASE = "/redfish/v1/Chassis/1"


def _ref(path: str) -> dict:
    return {"@odata.id": path}


class SimBmc:
    def __init__(self, sim, server: str) -> None:
        self.sim = sim
        self.server = server
        self.i = sim.server_names.index(server)
        self.bays = [f for f in range(2) if bool(sim.s_has[self.i, f])]
        self._docs = self._tree()

    def _tree(self) -> dict:
        """path -> a function building that document, fresh on every fetch (as a BMC answers)."""
        base, sim, i = _BASE, self.sim, self.i
        return {
            "/redfish/v1": lambda: {"Id": "RootService", "Chassis": _ref("/redfish/v1/Chassis"),
                                    "Managers": _ref("/redfish/v1/Managers")},
            "/redfish/v1/Chassis": lambda: {"Members": [_ref(base)]},
            "/redfish/v1/Managers": lambda: {"Members": []},
            base: lambda: {"Id": "1", "PowerSubsystem": _ref(base + "/PowerSubsystem"),
                           "ThermalSubsystem": _ref(base + "/ThermalSubsystem"), "Sensors": _ref(base + "/Sensors"),
                           "EnvironmentMetrics": _ref(base + "/EnvironmentMetrics")},
            base + "/PowerSubsystem": lambda: {"PowerSupplies": _ref(base + "/PowerSubsystem/PowerSupplies")},
            base + "/PowerSubsystem/PowerSupplies": lambda: {
                "Members": [_ref(f"{base}/PowerSubsystem/PowerSupplies/Bay{n + 1}") for n in range(len(self.bays))]},
            base + "/ThermalSubsystem": lambda: {"Fans": _ref(base + "/ThermalSubsystem/Fans")},
            base + "/ThermalSubsystem/Fans": lambda: {"Members": [_ref(f"{base}/ThermalSubsystem/Fans/Fan{k}")
                                                                  for k in range(1, _FANS + 1)]},
            base + "/EnvironmentMetrics": lambda: {"PowerWatts": {"Reading": round(float(sim.s_power[i]), 1)}},
            base + "/Sensors": lambda: {"Members": [_ref(base + "/Sensors/IntakeTemp"),
                                                    _ref(base + "/Sensors/ExhaustTemp")]},
        }

    # the same interface as RedfishConnection
    def fetch(self, path: str) -> dict | None:
        sim, i = self.sim, self.i
        if self.server in sim.silent:
            raise BmcUnavailable(f"{self.server}: BMC does not answer (no route: the rack's management network is down)")
        fed = bool(sim.s_up[i]) or any(sim.s_psu_ok[i, f] and sim.s_psu_w[i, f] > 0 for f in self.bays)
        if not fed:
            raise BmcUnavailable(f"{self.server}: BMC does not answer (no standby power: every feed is dead)")
        build = self._docs.get(path)
        if build is not None:
            return build()
        base = _BASE
        rest = path[len(base) + 1:] if path.startswith(base + "/") else ""
        if rest.startswith("PowerSubsystem/PowerSupplies/Bay"):
            return self._psu(rest)
        if rest.startswith("ThermalSubsystem/Fans/Fan"):
            return self._fan(int(rest.rsplit("Fan", 1)[1]))
        if rest in ("Sensors/IntakeTemp", "Sensors/ExhaustTemp"):
            inlet = float(sim.s_inlet[i])
            util = float(sim.util_by_server()[i]) if sim.s_up[i] else 0.0
            value = inlet if rest.endswith("IntakeTemp") else inlet + 8.0 + 14.0 * util
            return {"Id": rest.split("/")[1], "ReadingType": "Temperature", "ReadingUnits": "Cel",
                    "PhysicalContext": "Intake" if rest.endswith("IntakeTemp") else "Exhaust",
                    "Reading": round(value, 1), "Status": {"State": "Enabled", "Health": "OK"}}
        return None

    def _psu(self, rest: str) -> dict | None:
        sim, i = self.sim, self.i
        name, _, metrics = rest[len("PowerSubsystem/PowerSupplies/"):].partition("/")
        try:
            n = int(name[3:]) - 1
            f = self.bays[n]
        except (ValueError, IndexError):
            return None
        ok, watts = bool(sim.s_psu_ok[i, f]), float(sim.s_psu_w[i, f])
        if metrics == "Metrics":
            return {"Id": "Metrics", "InputPowerWatts": {"Reading": round(watts, 1) if ok else 0.0},
                    "OutputPowerWatts": {"Reading": round(watts * 0.94, 1) if ok else 0.0}}
        if metrics:
            return None
        lost_input = ok and watts <= 0 and bool(sim.s_up[i])
        return {"Id": name, "Name": f"PSU {n + 1} (feed {_FEEDS[f]})", "PowerCapacityWatts": 3000,
                "Status": {"State": "Enabled", "Health": "OK" if ok and not lost_input else ("Warning" if ok else "Critical")},
                "LineInputStatus": "LossOfInput" if lost_input or not sim.s_up[i] and ok else "Normal",
                "Metrics": _ref(f"/redfish/v1/Chassis/1/PowerSubsystem/PowerSupplies/{name}/Metrics")}

    def _fan(self, k: int) -> dict | None:
        sim, i = self.sim, self.i
        if not 1 <= k <= _FANS:
            return None
        failed = k == 1 and not bool(sim.s_fan_ok[i])
        pct = 0.0 if failed else (45.0 + 40.0 * float(sim.util_by_server()[i]) if sim.s_up[i] else 0.0)
        return {"Id": f"Fan{k}", "PhysicalContext": "Chassis",
                "Status": {"State": "Enabled", "Health": "Critical" if failed else "OK"},
                "SpeedPercent": {"Reading": round(pct, 1), "SpeedRPM": round(pct * 120.0)}}

    def close(self) -> None:
        return None


def sim_connect(sim):
    """A `connect` for RedfishPoller: each target's name is a simulated server."""
    def connect(target: BmcTarget) -> SimBmc:
        if target.name not in sim.server_names:
            raise BmcUnavailable(f"{target.name} is not a simulated server")
        return SimBmc(sim, target.name)
    return connect


