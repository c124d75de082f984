"""Environment sensors (temperature, humidity, dew point, leak, door)."""

from dcops.catalogue.types import Kind, Measurement, Metric

G, S = Kind.GAUGE, Kind.STATE
_SRC = ("snmp", "sim")

MEASUREMENTS = (
    Measurement("env", ("site", "hall", "row", "rack", "device", "index"), "An environment probe."),
)

METRICS = (
    Metric("env_temp_degc", "env", "degC", G, "Air temperature.", _SRC),
    Metric("env_humidity_pct", "env", "%RH", G, "Relative humidity.", _SRC),
    Metric("env_dewpoint_degc", "env", "degC", G, "Dew point.", _SRC),
    Metric("env_leak", "env", "state", S, "1 when a leak is detected.", _SRC, ((0, "dry"), (1, "leak"))),
    Metric("env_door_open", "env", "state", S, "1 when the door is open.", _SRC, ((0, "closed"), (1, "open"))),
)
