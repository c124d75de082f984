"""Collectors: one module per telemetry source (SNMP, traps, NVML, NPU, Prometheus scrape)."""
