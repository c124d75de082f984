"""Power chain: UPSes and PDUs (floor and rack)."""

from dcops.catalogue.types import Kind, Measurement, Metric

G, C, S = Kind.GAUGE, Kind.COUNTER, Kind.STATE
_SRC = ("snmp", "sim")

MEASUREMENTS = (
    Measurement("pdu", ("site", "hall", "device", "index"), "A PDU; index is '' for totals, else phase/bank/outlet."),
    Measurement("ups", ("site", "hall", "device", "index"), "A UPS; index is '' for totals, else the phase/line."),
)

METRICS = (
    Metric("pdu_power_w", "pdu", "W", G, "Active power.", _SRC),
    Metric("pdu_apparent_power_va", "pdu", "VA", G, "Apparent power.", _SRC),
    Metric("pdu_reactive_power_var", "pdu", "VAR", G, "Reactive power (sign: inductive +, capacitive -).", _SRC,
           valid=(-1e9, 1e9)),
    Metric("pdu_current_a", "pdu", "A", G, "Current.", _SRC),
    Metric("pdu_voltage_v", "pdu", "V", G, "Voltage.", _SRC),
    Metric("pdu_frequency_hz", "pdu", "Hz", G, "Frequency.", _SRC),
    Metric("pdu_load_pct", "pdu", "%", G, "Load as a share of the rated capacity.", _SRC),
    Metric("pdu_energy_wh_total", "pdu", "Wh", C, "Energy delivered.", _SRC),
    Metric("pdu_breaker_closed", "pdu", "state", S, "1 when the breaker is closed, 0 when tripped/open.", _SRC, ((0, "tripped"), (1, "closed"))),
    Metric("pdu_temp_degc", "pdu", "degC", G, "Temperature probe on the PDU.", _SRC),
    Metric("pdu_humidity_pct", "pdu", "%RH", G, "Humidity probe on the PDU.", _SRC),
    Metric("pdu_neutral_current_a", "pdu", "A", G, "Neutral conductor current.", _SRC),
    Metric("pdu_current_headroom_a", "pdu", "A", G, "Current still available before the load alarm threshold (negative past it).",
           _SRC, valid=(-1e5, 1e5)),
    Metric("ups_input_voltage_v", "ups", "V", G, "Input (utility) voltage.", _SRC),
    Metric("ups_input_frequency_hz", "ups", "Hz", G, "Input frequency.", _SRC),
    Metric("ups_input_current_a", "ups", "A", G, "Input current.", _SRC),
    Metric("ups_input_power_w", "ups", "W", G, "Input power.", _SRC),
    Metric("ups_output_voltage_v", "ups", "V", G, "Output voltage.", _SRC),
    Metric("ups_output_frequency_hz", "ups", "Hz", G, "Output frequency.", _SRC),
    Metric("ups_output_current_a", "ups", "A", G, "Output current.", _SRC),
    Metric("ups_output_power_w", "ups", "W", G, "Output active power.", _SRC),
    Metric("ups_output_apparent_power_va", "ups", "VA", G, "Output apparent power.", _SRC),
    Metric("ups_output_load_pct", "ups", "%", G, "Output load as a share of capacity.", _SRC),
    Metric("ups_battery_charge_pct", "ups", "%", G, "Battery charge remaining.", _SRC),
    Metric("ups_battery_runtime_s", "ups", "s", G, "Estimated runtime on battery.", _SRC),
    Metric("ups_battery_voltage_v", "ups", "V", G, "Battery voltage.", _SRC),
    Metric("ups_battery_current_a", "ups", "A", G, "Battery current (sign: the device's convention, charge vs discharge).", _SRC,
           valid=(-1e5, 1e5)),
    Metric("ups_battery_temp_degc", "ups", "degC", G, "Battery temperature.", _SRC),
    Metric("ups_on_battery", "ups", "state", S, "1 while the load runs on battery.", _SRC, ((0, "utility"), (1, "battery"))),
    Metric("ups_time_on_battery_s", "ups", "s", G, "Time since switching to battery.", _SRC),
    Metric("ups_temp_degc", "ups", "degC", G, "Internal/ambient temperature.", _SRC),
    Metric("ups_bypass_voltage_v", "ups", "V", G, "Bypass input voltage.", _SRC),
    Metric("ups_bypass_current_a", "ups", "A", G, "Bypass current.", _SRC),
    Metric("ups_bypass_power_w", "ups", "W", G, "Bypass power.", _SRC),
    Metric("ups_bypass_frequency_hz", "ups", "Hz", G, "Bypass frequency.", _SRC),
)
