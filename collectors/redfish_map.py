"""Redfish resources -> dcops readings: a pure walk over a BMC's resource tree.

`read_bmc(fetch)` walks the service root to every Chassis and reads both power/thermal models:

- the current model: `Sensors` (every numeric sensor, typed by `ReadingType`, or by
  `ReadingUnits` where a BMC leaves the type out), `PowerSubsystem/PowerSupplies` (+ `Metrics`),
  `ThermalSubsystem/Fans`, `CoolantConnectors`, `Pumps`, `LeakDetection`, `EnvironmentMetrics`;
- the legacy model: `Power` (`PowerControl`, `PowerSupplies`, `Voltages`) and `Thermal`
  (`Temperatures`, `Fans`).

Where a chassis has both, each kind of reading comes from one model only, so no sensor is
counted twice: numeric sensors from `Sensors` when it exists (legacy `Temperatures` and
`Voltages` otherwise), PSUs from `PowerSubsystem` (else `Power`), fans from `ThermalSubsystem`
(else `Thermal`). Chassis power and its limit come from `EnvironmentMetrics` (else `PowerControl`).

A reading without a value (an absent PSU bay, a sensor with `Reading: null` or none at all, a
disabled probe) is listed in `missing` with its reason, never stored as a number. A resource the
BMC answers with an `{"error": ...}` body (real BMCs do, with HTTP 200) or that is not JSON is
listed in `problems` and skipped. Nothing here gates on `@odata.type` versions: BMCs carry links
their declared schema version does not have.

`fetch(path)` returns the JSON document at a path (`/redfish/v1/...`), or None when there is
none (404); it may raise `RedfishFetchError` for a resource that could not be read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterable

__all__ = ["Reading", "Psu", "BmcSnapshot", "RedfishFetchError", "read_bmc", "norm_path", "HEALTH", "SENSOR_TYPES"]

HEALTH = {"OK": 0.0, "Warning": 1.0, "Critical": 2.0}
_OFF = ("Absent", "Disabled", "UnavailableOffline")  # a reading in these states is not a measurement

# ReadingType -> (metric, scale to the canonical unit); ReadingUnits (UCUM) when the type is missing.
SENSOR_TYPES = {
    "Temperature": ("bmc_temp_degc", 1.0), "Power": ("bmc_power_w", 1.0), "Voltage": ("bmc_voltage_v", 1.0),
    "Current": ("bmc_current_a", 1.0), "EnergykWh": ("bmc_energy_j_total", 3.6e6), "EnergyJoules": ("bmc_energy_j_total", 1.0),
    "EnergyWh": ("bmc_energy_j_total", 3600.0), "Frequency": ("bmc_frequency_hz", 1.0), "Percent": ("bmc_percent_pct", 1.0),
    "Humidity": ("bmc_humidity_pct", 1.0), "Rotational": ("bmc_fan_rpm", 1.0), "LiquidFlowLPM": ("bmc_flow_lpm", 1.0),
    "LiquidFlow": ("bmc_flow_lpm", 1.0), "PressurekPa": ("bmc_pressure_kpa", 1.0), "PressurePa": ("bmc_pressure_kpa", 0.001),
    "PressurePascal": ("bmc_pressure_kpa", 0.001), "AbsoluteHumidity": (None, 1.0), "AirFlow": (None, 1.0),
}
UNITS = {
    "Cel": ("bmc_temp_degc", 1.0), "W": ("bmc_power_w", 1.0), "kW": ("bmc_power_w", 1000.0), "V": ("bmc_voltage_v", 1.0),
    "A": ("bmc_current_a", 1.0), "kW.h": ("bmc_energy_j_total", 3.6e6), "J": ("bmc_energy_j_total", 1.0),
    "Hz": ("bmc_frequency_hz", 1.0), "%": ("bmc_percent_pct", 1.0), "{rev}/min": ("bmc_fan_rpm", 1.0),
    "RPM": ("bmc_fan_rpm", 1.0), "L/min": ("bmc_flow_lpm", 1.0), "kPa": ("bmc_pressure_kpa", 1.0), "Pa": ("bmc_pressure_kpa", 0.001),
}


class RedfishFetchError(RuntimeError):
    """A resource could not be read (HTTP error, not JSON, timeout): said, then skipped."""


@dataclass(frozen=True)
class Reading:
    chassis: str
    sensor: str          # psu:Bay1, fan:Fan3, temp:CPU1Temp, sensor:PS1InputPower, chassis:power
    context: str         # Redfish PhysicalContext ("" when the BMC gives none)
    metric: str          # a bmc_* catalogue metric
    value: float


@dataclass(frozen=True)
class Psu:
    chassis: str
    bay: str
    present: bool
    health: float        # HEALTH value, NaN when the BMC says nothing
    delivering: bool     # present, enabled and not critical


@dataclass
class BmcSnapshot:
    readings: list[Reading] = field(default_factory=list)
    psus: list[Psu] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    chassis: list[str] = field(default_factory=list)

    def count(self, metric_prefix: str = "") -> int:
        return sum(r.metric.startswith(metric_prefix) for r in self.readings)


def norm_path(ref: str) -> str:
    """`/redfish/v1/Chassis/1/` and `/redfish/v1/Chassis/1` are one resource; drop fragments."""
    path = ref.split("#", 1)[0]
    return path.rstrip("/") or "/"


def _link(doc: dict, key: str) -> str | None:
    v = doc.get(key)
    if isinstance(v, dict) and isinstance(v.get("@odata.id"), str):
        return norm_path(v["@odata.id"])
    return None


def _num(v) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def _health(doc: dict) -> float:
    st = doc.get("Status") if isinstance(doc.get("Status"), dict) else {}
    return HEALTH.get(st.get("Health"), math.nan)


def _state(doc: dict) -> str:
    st = doc.get("Status") if isinstance(doc.get("Status"), dict) else {}
    return str(st.get("State") or "")


class _Walker:
    def __init__(self, fetch: Callable[[str], dict | None]) -> None:
        self.fetch = fetch
        self.snap = BmcSnapshot()

    def get(self, path: str | None) -> dict | None:
        if path is None:
            return None
        try:
            doc = self.fetch(path)
        except RedfishFetchError as exc:
            self.snap.problems.append(f"GET {path}: {exc}")
            return None
        if doc is None:
            return None
        if not isinstance(doc, dict):
            self.snap.problems.append(f"GET {path}: not a JSON object")
            return None
        if "error" in doc and "@odata.id" not in doc:
            err = doc["error"] if isinstance(doc["error"], dict) else {}
            info = (err.get("@Message.ExtendedInfo") or [{}])[0] if isinstance(err.get("@Message.ExtendedInfo"), list) else {}
            self.snap.problems.append(f"GET {path}: the BMC answered an error: "
                                      f"{info.get('MessageId') or err.get('code', '?')} {info.get('Message') or err.get('message', '')}".strip())
            return None
        return doc

    def members(self, path: str | None) -> Iterable[tuple[str, dict]]:
        """The members of a collection, fetched (or embedded, as some BMCs do)."""
        coll = self.get(path)
        if coll is None:
            return
        for m in coll.get("Members") or []:
            if not isinstance(m, dict) or not isinstance(m.get("@odata.id"), str):
                continue
            mp = norm_path(m["@odata.id"])
            doc = m if len(m) > 2 and "Id" in m else self.get(mp)
            if doc is not None:
                yield mp, doc

    def add(self, chassis: str, sensor: str, context, metric: str | None, value, scale: float = 1.0,
            why_missing: str = "") -> bool:
        v = _num(value)
        if metric is None:
            return False
        if v is None:
            self.snap.missing.append(f"{chassis}/{sensor} ({metric}): {why_missing or 'no reading'}")
            return False
        self.snap.readings.append(Reading(chassis, sensor, str(context or ""), metric, v * scale))
        return True


def read_bmc(fetch: Callable[[str], dict | None]) -> BmcSnapshot:
    w = _Walker(fetch)
    root = w.get("/redfish/v1")
    if root is None:
        raise RedfishFetchError("no Redfish service root at /redfish/v1")
    for cpath, ch in w.members(_link(root, "Chassis")):
        cid = str(ch.get("Id") or cpath.rsplit("/", 1)[-1])
        w.snap.chassis.append(cid)
        _chassis(w, cid, ch)
    return w.snap


def _chassis(w: _Walker, cid: str, ch: dict) -> None:
    sensors = _link(ch, "Sensors")
    psub, tsub, env = _link(ch, "PowerSubsystem"), _link(ch, "ThermalSubsystem"), _link(ch, "EnvironmentMetrics")
    legacy_power, legacy_thermal = _link(ch, "Power"), _link(ch, "Thermal")
    have_sensors = sensors is not None and _sensors(w, cid, sensors)
    power = w.get(legacy_power) if legacy_power else None
    thermal = w.get(legacy_thermal) if legacy_thermal else None
    have_psub = psub is not None and _power_subsystem(w, cid, psub)
    if not have_psub and power is not None:
        _legacy_psus(w, cid, power)
    have_tsub = tsub is not None and _thermal_subsystem(w, cid, tsub)
    if thermal is not None:
        _legacy_thermal(w, cid, thermal, temps=not have_sensors, fans=not have_tsub)
    if power is not None and not have_sensors:
        for i, v in enumerate(power.get("Voltages") or []):
            if isinstance(v, dict):
                w.add(cid, f"volt:{v.get('Name') or i}", v.get("PhysicalContext"), "bmc_voltage_v", v.get("ReadingVolts"),
                      why_missing=_state(v) or "no ReadingVolts")
    envdoc = w.get(env) if env else None
    if envdoc is not None and _num((envdoc.get("PowerWatts") or {}).get("Reading")) is not None:
        w.add(cid, "chassis:power", "Chassis", "bmc_power_w", envdoc["PowerWatts"]["Reading"])
        w.add(cid, "chassis:power", "Chassis", "bmc_power_limit_w", (envdoc.get("PowerLimitWatts") or {}).get("SetPoint"),
              why_missing="no power limit set")
    elif power is not None:
        for i, pc in enumerate(power.get("PowerControl") or []):
            if isinstance(pc, dict):
                name = f"chassis:{pc.get('Name') or i}"
                w.add(cid, name, "Chassis", "bmc_power_w", pc.get("PowerConsumedWatts"), why_missing="no PowerConsumedWatts")
                limit = (pc.get("PowerLimit") or {}).get("LimitInWatts") if isinstance(pc.get("PowerLimit"), dict) else None
                if limit is not None:
                    w.add(cid, name, "Chassis", "bmc_power_limit_w", limit)


def _sensors(w: _Walker, cid: str, path: str) -> bool:
    found = False
    for _, s in w.members(path):
        found = True
        rtype, units = s.get("ReadingType"), s.get("ReadingUnits")
        metric, scale = SENSOR_TYPES.get(rtype) or UNITS.get(units) or (None, 1.0)
        name = f"sensor:{s.get('Id') or s.get('Name')}"
        if metric is None:
            w.snap.missing.append(f"{cid}/{name}: reading type {rtype or units!r} is not mapped")
            continue
        if rtype == "Percent" and s.get("PhysicalContext") == "Fan":
            metric = "bmc_fan_pct"
        if _state(s) in _OFF:
            w.snap.missing.append(f"{cid}/{name} ({metric}): state {_state(s)}")
            continue
        w.add(cid, name, s.get("PhysicalContext"), metric, s.get("Reading"), scale,
              why_missing=("no Reading property" if "Reading" not in s else f"Reading null, state {_state(s) or '?'}"))
    return found


def _power_subsystem(w: _Walker, cid: str, path: str) -> bool:
    doc = w.get(path)
    if doc is None:
        return False
    found = False
    for _, p in w.members(_link(doc, "PowerSupplies")):
        found = True
        bay = f"psu:{p.get('Id') or p.get('Name')}"
        _psu_state(w, cid, bay, p)
        w.add(cid, bay, "PowerSupply", "bmc_psu_capacity_w", p.get("PowerCapacityWatts"), why_missing="no rating")
        if _state(p) == "Absent":
            continue
        m = w.get(_link(p, "Metrics"))
        if m is not None:
            for key, metric in (("InputPowerWatts", "bmc_psu_input_power_w"), ("OutputPowerWatts", "bmc_psu_output_power_w"),
                                ("InputVoltage", "bmc_psu_input_voltage_v")):
                if isinstance(m.get(key), dict):
                    w.add(cid, bay, "PowerSupply", metric, m[key].get("Reading"), why_missing=f"{key} without a reading")
    return found


def _psu_state(w: _Walker, cid: str, bay: str, p: dict) -> None:
    present = _state(p) != "Absent"
    health = _health(p)
    w.snap.psus.append(Psu(cid, bay.split(":", 1)[1], present, health,
                           present and _state(p) in ("Enabled", "") and health != 2.0))
    w.snap.readings.append(Reading(cid, bay, "PowerSupply", "bmc_present", 1.0 if present else 0.0))
    if present and not math.isnan(health):
        w.snap.readings.append(Reading(cid, bay, "PowerSupply", "bmc_health", health))


def _legacy_psus(w: _Walker, cid: str, power: dict) -> None:
    for i, p in enumerate(power.get("PowerSupplies") or []):
        if not isinstance(p, dict):
            continue
        bay = f"psu:{p.get('Name') or p.get('MemberId') or i}"
        if any(x.bay == bay[4:] and x.chassis == cid for x in w.snap.psus):  # two bays of one name
            bay = f"{bay} #{i}"
        _psu_state(w, cid, bay, p)
        w.add(cid, bay, "PowerSupply", "bmc_psu_capacity_w", p.get("PowerCapacityWatts"), why_missing="no rating")
        if _state(p) == "Absent":
            continue
        w.add(cid, bay, "PowerSupply", "bmc_psu_output_power_w", p.get("LastPowerOutputWatts"), why_missing="no LastPowerOutputWatts")
        if "PowerInputWatts" in p:
            w.add(cid, bay, "PowerSupply", "bmc_psu_input_power_w", p.get("PowerInputWatts"))
        w.add(cid, bay, "PowerSupply", "bmc_psu_input_voltage_v", p.get("LineInputVoltage"), why_missing="no LineInputVoltage")


def _thermal_subsystem(w: _Walker, cid: str, path: str) -> bool:
    doc = w.get(path)
    if doc is None:
        return False
    found = False
    for _, f in w.members(_link(doc, "Fans")):
        found = True
        name = f"fan:{f.get('Id') or f.get('Name')}"
        _part_state(w, cid, name, f.get("PhysicalContext") or "Fan", f)
        sp = f.get("SpeedPercent") if isinstance(f.get("SpeedPercent"), dict) else {}
        if _state(f) != "Absent":
            w.add(cid, name, f.get("PhysicalContext") or "Fan", "bmc_fan_pct", sp.get("Reading"), why_missing="no SpeedPercent")
            if "SpeedRPM" in sp:
                w.add(cid, name, f.get("PhysicalContext") or "Fan", "bmc_fan_rpm", sp.get("SpeedRPM"))
    for _, c in w.members(_link(doc, "CoolantConnectors")):
        found = True
        name = f"coolant:{c.get('Id') or c.get('Name')}"
        _part_state(w, cid, name, "LiquidInlet", c)
        for key, metric, ctx in (("SupplyTemperatureCelsius", "bmc_temp_degc", "LiquidInlet"),
                                 ("ReturnTemperatureCelsius", "bmc_temp_degc", "LiquidOutlet"),
                                 ("FlowLitersPerMinute", "bmc_flow_lpm", "LiquidInlet"),
                                 ("SupplyPressurekPa", "bmc_pressure_kpa", "LiquidInlet"),
                                 ("ReturnPressurekPa", "bmc_pressure_kpa", "LiquidOutlet"),
                                 ("DeltaPressurekPa", "bmc_pressure_kpa", "LiquidInlet")):
            if isinstance(c.get(key), dict):
                w.add(cid, f"{name}:{key}", ctx, metric, c[key].get("Reading"), why_missing=f"{key} without a reading")
    for _, p in w.members(_link(doc, "Pumps")):
        found = True
        name = f"pump:{p.get('Id') or p.get('Name')}"
        _part_state(w, cid, name, "Pump", p)
        sp = p.get("PumpSpeedPercent") if isinstance(p.get("PumpSpeedPercent"), dict) else {}
        w.add(cid, name, "Pump", "bmc_percent_pct", sp.get("Reading"), why_missing="no PumpSpeedPercent")
    leak = w.get(_link(doc, "LeakDetection"))
    if leak is not None:
        for _, d in w.members(_link(leak, "LeakDetectors")):
            state = d.get("DetectorState")
            if state is not None:
                w.snap.readings.append(Reading(cid, f"leak:{d.get('Id') or d.get('Name')}", str(d.get("PhysicalContext") or ""),
                                               "bmc_leak", 0.0 if state == "OK" else 1.0))
    return found


def _part_state(w: _Walker, cid: str, name: str, ctx: str, doc: dict) -> None:
    present = _state(doc) != "Absent"
    w.snap.readings.append(Reading(cid, name, ctx, "bmc_present", 1.0 if present else 0.0))
    h = _health(doc)
    if present and not math.isnan(h):
        w.snap.readings.append(Reading(cid, name, ctx, "bmc_health", h))


def _legacy_thermal(w: _Walker, cid: str, thermal: dict, temps: bool, fans: bool) -> None:
    if temps:
        for i, t in enumerate(thermal.get("Temperatures") or []):
            if not isinstance(t, dict):
                continue
            name = f"temp:{t.get('Name') or t.get('MemberId') or i}"
            if _state(t) in _OFF:
                w.snap.missing.append(f"{cid}/{name} (bmc_temp_degc): state {_state(t)}")
                continue
            w.add(cid, name, t.get("PhysicalContext"), "bmc_temp_degc", t.get("ReadingCelsius"),
                  why_missing=f"no ReadingCelsius, state {_state(t) or '?'}")
    if fans:
        for i, f in enumerate(thermal.get("Fans") or []):
            if not isinstance(f, dict):
                continue
            name = f"fan:{f.get('Name') or f.get('FanName') or f.get('MemberId') or i}"
            _part_state(w, cid, name, f.get("PhysicalContext") or "Fan", f)
            if _state(f) == "Absent":
                continue
            units = f.get("ReadingUnits") or ("RPM" if "ReadingRPM" in f else "")
            value = f.get("Reading", f.get("ReadingRPM"))
            metric = "bmc_fan_pct" if units == "Percent" else "bmc_fan_rpm"
            w.add(cid, name, f.get("PhysicalContext") or "Fan", metric, value, why_missing="no Reading")
