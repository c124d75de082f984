"""Server BMCs over Redfish: one row per sensor or part (PSU bay, fan, temperature, coolant loop).

`chassis` is the Redfish chassis id (a server may have several: node, enclosure, mezzanine);
`sensor` names the part (`psu:Bay1`, `fan:Fan3`, `temp:IntakeTemp`, `sensor:PS1InputPower`);
`context` is Redfish's PhysicalContext (Intake, CPU, GPU, PowerSupply, Exhaust, ...) so rules and
the console can pick "inlet" or "GPU" temperatures without knowing a vendor's sensor names.
"""

from dcops.catalogue.types import Kind, Measurement, Metric

G, C, S = Kind.GAUGE, Kind.COUNTER, Kind.STATE
_SRC = ("redfish",)
_HEALTH = ((0, "ok"), (1, "warning"), (2, "critical"))

MEASUREMENTS = (
    Measurement("bmc", ("site", "hall", "row", "rack", "device", "chassis", "sensor", "context"),
                "A server BMC's sensors and parts over Redfish (PSUs, fans, temperatures, coolant, power)."),
)

METRICS = (
    Metric("bmc_temp_degc", "bmc", "degC", G, "A temperature sensor (context says where: Intake, CPU, GPU, ...).", _SRC),
    Metric("bmc_power_w", "bmc", "W", G, "A power sensor or a chassis' consumed power.", _SRC),
    Metric("bmc_power_limit_w", "bmc", "W", G, "A chassis' power limit (set point).", _SRC),
    Metric("bmc_voltage_v", "bmc", "V", G, "A voltage sensor (PSU input, rails, VRs).", _SRC),
    Metric("bmc_current_a", "bmc", "A", G, "A current sensor.", _SRC),
    Metric("bmc_energy_j_total", "bmc", "J", C, "An energy counter (kWh and J sensors, in joules).", _SRC),
    Metric("bmc_frequency_hz", "bmc", "Hz", G, "A frequency sensor (PSU input).", _SRC),
    Metric("bmc_percent_pct", "bmc", "%", G, "A percentage sensor (battery health, utilisation).", _SRC),
    Metric("bmc_humidity_pct", "bmc", "%RH", G, "A humidity sensor.", _SRC),
    Metric("bmc_fan_rpm", "bmc", "rpm", G, "Fan speed.", _SRC),
    Metric("bmc_fan_pct", "bmc", "%", G, "Fan speed as a share of its maximum.", _SRC),
    Metric("bmc_flow_lpm", "bmc", "l/min", G, "Coolant flow (cold plate loop, CDU connector).", _SRC),
    Metric("bmc_pressure_kpa", "bmc", "kPa", G, "Coolant pressure.", _SRC),
    Metric("bmc_leak", "bmc", "state", S, "A leak detector.", _SRC, ((0, "dry"), (1, "leak"))),
    Metric("bmc_psu_input_power_w", "bmc", "W", G, "A PSU's input power.", _SRC),
    Metric("bmc_psu_output_power_w", "bmc", "W", G, "A PSU's output power.", _SRC),
    Metric("bmc_psu_input_voltage_v", "bmc", "V", G, "A PSU's input (line) voltage.", _SRC),
    Metric("bmc_psu_capacity_w", "bmc", "W", G, "A PSU's rated capacity.", _SRC),
    Metric("bmc_present", "bmc", "state", S, "Whether the part is installed.", _SRC, ((0, "absent"), (1, "present"))),
    Metric("bmc_health", "bmc", "state", S, "The part's Redfish health.", _SRC, _HEALTH),
)
