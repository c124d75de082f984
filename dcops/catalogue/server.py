"""Servers (hosts of accelerators) and racks."""

from dcops.catalogue.types import Kind, Measurement, Metric

G, S = Kind.GAUGE, Kind.STATE

MEASUREMENTS = (
    Measurement("server", ("site", "hall", "row", "rack", "device"), "A GPU/NPU server: PSUs, fans, inlet."),
    Measurement("rack", ("site", "hall", "row", "rack"), "A rack: feeds, total power, inlet/outlet air."),
    Measurement("site", ("site",), "Site totals: IT and facility power."),
)

METRICS = (
    Metric("server_up", "server", "state", S, "1 when the host is powered and answering.", ("sim", "agent"), ((0, "down"), (1, "up"))),
    Metric("server_power_w", "server", "W", G, "Input power, both PSUs.", ("sim", "ipmi")),
    Metric("server_psu_a_power_w", "server", "W", G, "Power drawn through PSU A (feed A).", ("sim", "ipmi")),
    Metric("server_psu_b_power_w", "server", "W", G, "Power drawn through PSU B (feed B).", ("sim", "ipmi")),
    Metric("server_psu_ok", "server", "count", G, "PSUs delivering power.", ("sim", "ipmi")),
    Metric("server_inlet_temp_degc", "server", "degC", G, "Server inlet air temperature.", ("sim", "ipmi")),
    Metric("server_fan_pct", "server", "%", G, "Chassis fan duty.", ("sim", "ipmi")),
    Metric("rack_power_w", "rack", "W", G, "Total rack power, all feeds.", ("sim", "snmp")),
    Metric("rack_feed_a_power_w", "rack", "W", G, "Power on feed A.", ("sim", "snmp")),
    Metric("rack_feed_b_power_w", "rack", "W", G, "Power on feed B.", ("sim", "snmp")),
    Metric("rack_inlet_temp_degc", "rack", "degC", G, "Cold-aisle inlet air temperature at the rack.", ("sim", "snmp")),
    Metric("rack_outlet_temp_degc", "rack", "degC", G, "Hot-aisle exhaust temperature at the rack.", ("sim", "snmp")),
    Metric("site_it_power_w", "site", "W", G, "IT load: all racks.", ("sim",)),
    Metric("site_facility_power_w", "site", "W", G, "Facility power: IT + cooling + losses.", ("sim", "snmp")),
)
