"""What real sensors add to the truth: per-unit bias, ageing, noise and the resolution the
collectors deliver. All of it is drawn from the simulator's seed, apart from its physics
stream, so asking for readings never changes how the site evolves, and asking twice in one
step gives the same readings.

Resolution (`RESOLUTION`) is the step of the value as the real source reports it:
- NVML: temperatures in whole degC, power in mW, utilisation and fan in whole %, clocks in MHz;
  rbln-stat: whole degC.
- Server BMCs (Redfish/IPMI SDR): inlet temperature in whole degC, power in whole W.
- Rack PDUs and floor PDUs (SNMP): power in W, current in 0.1 A, voltage in 0.1 V, frequency in
  0.1 Hz; probes in 0.1 degC, humidity in whole %RH.
- UPS-MIB: voltages in whole V, current in 0.1 A, load and charge in whole %, runtime in whole
  minutes (upsEstimatedMinutesRemaining), battery voltage in 0.1 V, temperature in whole degC.
- Cooling units (Liebert/Vertiv/Rittal style SNMP): temperatures in 0.1 degC, power and load
  in 0.1 kW, filter pressure drop in whole Pa, flow in 0.1 l/min, pressure in 0.1 kPa.
"""

from __future__ import annotations

from types import MappingProxyType

import numpy as np

from dcops.batch import Batch

__all__ = ["RESOLUTION", "SensorModel", "quantise"]

RESOLUTION = MappingProxyType({
    # accelerators (NVML / rbln-stat)
    "accel_temp_degc": 1.0, "accel_mem_temp_degc": 1.0, "accel_power_w": 0.001, "accel_power_limit_w": 0.001,
    "accel_util_pct": 1.0, "accel_mem_util_pct": 1.0, "accel_fan_pct": 1.0, "accel_sm_clock_mhz": 1.0,
    "accel_mem_clock_mhz": 1.0,
    # servers (BMC)
    "server_power_w": 1.0, "server_psu_a_power_w": 1.0, "server_psu_b_power_w": 1.0,
    "server_inlet_temp_degc": 1.0, "server_fan_pct": 1.0,
    # racks (rack PDUs and inlet/outlet probes)
    "rack_power_w": 1.0, "rack_feed_a_power_w": 1.0, "rack_feed_b_power_w": 1.0,
    "rack_inlet_temp_degc": 0.1, "rack_outlet_temp_degc": 0.1,
    # floor PDUs
    "pdu_power_w": 1.0, "pdu_apparent_power_va": 1.0, "pdu_current_a": 0.1, "pdu_voltage_v": 0.1,
    "pdu_frequency_hz": 0.1, "pdu_load_pct": 0.1, "pdu_energy_wh_total": 1.0,
    # UPSes (UPS-MIB)
    "ups_input_voltage_v": 1.0, "ups_input_frequency_hz": 0.1, "ups_output_voltage_v": 1.0,
    "ups_output_frequency_hz": 0.1, "ups_output_power_w": 1.0, "ups_output_apparent_power_va": 1.0,
    "ups_output_current_a": 0.1, "ups_output_load_pct": 1.0, "ups_battery_charge_pct": 1.0,
    "ups_battery_runtime_s": 60.0, "ups_battery_voltage_v": 0.1, "ups_battery_temp_degc": 1.0,
    "ups_time_on_battery_s": 1.0,
    # cooling units
    "cooling_supply_temp_degc": 0.1, "cooling_return_temp_degc": 0.1, "cooling_setpoint_degc": 0.1,
    "cooling_fan_pct": 1.0, "cooling_load_w": 100.0, "cooling_capacity_w": 100.0, "cooling_power_w": 100.0,
    "cooling_filter_dp_pa": 1.0, "cooling_humidity_pct": 0.1, "cooling_flow_lpm": 0.1,
    "cooling_pressure_kpa": 0.1, "cooling_coolant_level_pct": 1.0,
    # environment probes
    "env_temp_degc": 0.1, "env_humidity_pct": 1.0, "env_dewpoint_degc": 0.1,
    # site meters
    "site_it_power_w": 1.0, "site_facility_power_w": 1.0,
})

# Per-unit fixed offsets (standard deviation), drawn once per site and seed.
_BIAS_SD = {"accel_temp": 1.0, "accel_mem_temp": 1.0, "server_inlet": 0.5, "rack_inlet": 0.3, "rack_outlet": 0.4,
            "env_temp": 0.3, "cooling_temp": 0.2, "voltage": 1.0, "power_gain": 0.005}
_FILTER_DP_CLEAN_PA = (90.0, 150.0)  # a new filter .. one at the end of its service life, unclogged


def quantise(batch: Batch) -> Batch:
    """Round each field with a known resolution to its step (NaN stays NaN), in place."""
    for name, col in batch.fields.items():
        q = RESOLUTION.get(name)
        if q is not None:
            col[:] = np.round(col / q) * q
    return batch


class SensorModel:
    """Fixed per-unit offsets and filter ages of one simulated site, and its noise streams."""

    def __init__(self, seed: int, n_accel: int, n_server: int, n_rack: int, n_env: int, n_unit: int,
                 n_pdu: int, n_ups: int) -> None:
        self.seed = int(seed)
        rng = np.random.default_rng([self.seed, 0x5E5])
        sd = _BIAS_SD
        self.accel_temp = rng.normal(0, sd["accel_temp"], n_accel)
        self.accel_mem_temp = rng.normal(0, sd["accel_mem_temp"], n_accel)
        self.server_inlet = rng.normal(0, sd["server_inlet"], n_server)
        self.server_power_gain = 1 + rng.normal(0, sd["power_gain"], n_server)
        self.rack_inlet = rng.normal(0, sd["rack_inlet"], n_rack)
        self.rack_outlet = rng.normal(0, sd["rack_outlet"], n_rack)
        self.rack_power_gain = 1 + rng.normal(0, sd["power_gain"], n_rack)
        self.env_temp = rng.normal(0, sd["env_temp"], n_env)
        self.cooling_supply = rng.normal(0, sd["cooling_temp"], n_unit)
        self.cooling_return = rng.normal(0, sd["cooling_temp"], n_unit)
        self.pdu_voltage = rng.normal(0, sd["voltage"], n_pdu)
        self.pdu_power_gain = 1 + rng.normal(0, sd["power_gain"], n_pdu)
        self.ups_voltage = rng.normal(0, sd["voltage"], n_ups)
        # filter age as a share of its service life: older filters drop more pressure
        self.filter_age = rng.uniform(0, 1, n_unit)

    def filter_dp_clean(self) -> np.ndarray:
        lo, hi = _FILTER_DP_CLEAN_PA
        return lo + (hi - lo) * self.filter_age

    def replace_filter(self, unit: int) -> None:
        self.filter_age[unit] = 0.0

    def noise(self, step: int, stream: int) -> np.random.Generator:
        """Noise stream `stream` of one step: the same on every call in that step."""
        return np.random.default_rng([self.seed, 0x4015E, int(step), int(stream)])
