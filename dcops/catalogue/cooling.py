"""Cooling: CRAC/CRAH air handlers, in-row coolers and liquid CDUs."""

from dcops.catalogue.types import Kind, Measurement, Metric

G, S = Kind.GAUGE, Kind.STATE
_SRC = ("snmp", "sim")

MEASUREMENTS = (
    Measurement("cooling", ("site", "hall", "device", "index"), "A CRAC/CRAH, in-row unit or CDU."),
)

METRICS = (
    Metric("cooling_running", "cooling", "state", S, "1 when the unit is running and cooling.", _SRC, ((0, "stopped"), (1, "running"))),
    Metric("cooling_supply_temp_degc", "cooling", "degC", G, "Supply (cold) air or coolant temperature.", _SRC),
    Metric("cooling_return_temp_degc", "cooling", "degC", G, "Return (hot) air or coolant temperature.", _SRC),
    Metric("cooling_setpoint_degc", "cooling", "degC", G, "Supply temperature setpoint.", _SRC),
    Metric("cooling_fan_pct", "cooling", "%", G, "Fan speed.", _SRC),
    Metric("cooling_airflow_m3h", "cooling", "m3/h", G, "Air flow.", _SRC),
    Metric("cooling_load_w", "cooling", "W", G, "Heat removed.", _SRC),
    Metric("cooling_capacity_w", "cooling", "W", G, "Available cooling capacity now.", _SRC),
    Metric("cooling_power_w", "cooling", "W", G, "Electrical power the unit draws.", _SRC),
    Metric("cooling_filter_dp_pa", "cooling", "Pa", G, "Pressure drop across the air filter.", _SRC),
    Metric("cooling_humidity_pct", "cooling", "%RH", G, "Return air relative humidity.", _SRC),
    Metric("cooling_flow_lpm", "cooling", "l/min", G, "Coolant flow (CDU).", _SRC),
    Metric("cooling_pressure_kpa", "cooling", "kPa", G, "Coolant pressure (CDU).", _SRC),
    Metric("cooling_coolant_level_pct", "cooling", "%", G, "Coolant level in the CDU's reservoir / expansion tank.", _SRC),
    Metric("cooling_leak", "cooling", "state", S, "1 when the unit's leak detection (rope/tray sensor) trips.", _SRC, ((0, "dry"), (1, "leak"))),
    Metric("cooling_temp_degc", "cooling", "degC", G, "Other temperature probe of the unit (coil, rack inlet, dew point, ...); index names it.", _SRC),
    Metric("cooling_thermal_power_w", "cooling", "W", G, "Cooling demand or output the unit reports; index names which.", _SRC),
    Metric("cooling_fan_rpm", "cooling", "rpm", G, "Fan speed; index names the fan.", _SRC),
    Metric("cooling_fan_freq_hz", "cooling", "Hz", G, "Fan/blower drive frequency (VFD); index names the fan.", _SRC),
    Metric("cooling_voltage_v", "cooling", "V", G, "Supply voltage of a unit component; index names it.", _SRC),
    Metric("cooling_current_a", "cooling", "A", G, "Current of a unit component (humidifier, blower); index names it.", _SRC),
)
