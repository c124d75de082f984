"""Accelerators (GPUs and NPUs), one row per accelerator per poll."""

from dcops.catalogue.types import Kind, Measurement, Metric

G, C, S = Kind.GAUGE, Kind.COUNTER, Kind.STATE
ACCEL_TAGS = ("site", "hall", "row", "rack", "device", "accel", "vendor", "model")

MEASUREMENTS = (
    Measurement("accel", ACCEL_TAGS, "One GPU or NPU (an NPU die for multi-die cards)."),
)

_NV = ("nvml", "dcgm", "sim")
_ALL = ("nvml", "dcgm", "rbln", "sim")

METRICS = (
    Metric("accel_up", "accel", "state", S, "1 when the accelerator answers, 0 when lost.", _ALL, ((0, "lost"), (1, "up"))),
    Metric("accel_temp_degc", "accel", "degC", G, "Core (GPU/NPU die) temperature.", _ALL),
    Metric("accel_mem_temp_degc", "accel", "degC", G, "Memory (HBM) temperature.", _NV),
    Metric("accel_power_w", "accel", "W", G, "Power draw; for a multi-die NPU card reported on die 0 only.", _ALL),
    Metric("accel_power_limit_w", "accel", "W", G, "Enforced power limit (cap).", _NV),
    Metric("accel_energy_j_total", "accel", "J", C, "Energy consumed since driver load.", _NV),
    Metric("accel_sm_clock_mhz", "accel", "MHz", G, "SM (graphics) clock.", _NV),
    Metric("accel_mem_clock_mhz", "accel", "MHz", G, "Memory clock.", _NV),
    Metric("accel_util_pct", "accel", "%", G, "Compute utilisation.", _ALL),
    Metric("accel_mem_util_pct", "accel", "%", G, "Memory bandwidth utilisation.", _NV),
    Metric("accel_mem_used_bytes", "accel", "bytes", G, "Device memory used.", _ALL),
    Metric("accel_mem_total_bytes", "accel", "bytes", G, "Device memory total.", _ALL),
    Metric("accel_fan_pct", "accel", "%", G, "Fan speed (air-cooled boards).", _NV),
    Metric("accel_pstate", "accel", "state", S, "Performance state P0..P15.", _ALL),
    Metric("accel_throttle_reasons", "accel", "state", S, "Clock-event reasons bitmask (NVML nvmlClocksEventReason*).", _NV),
    Metric("accel_thermal_throttle", "accel", "state", S, "1 while clocks are held down for temperature.", _ALL, ((0, "no"), (1, "yes"))),
    Metric("accel_power_throttle", "accel", "state", S, "1 while clocks are held down by the power cap.", _NV, ((0, "no"), (1, "yes"))),
    Metric("accel_ecc_volatile_corrected", "accel", "count", G, "Corrected ECC errors since driver load.", _NV),
    Metric("accel_ecc_volatile_uncorrected", "accel", "count", G, "Uncorrected (double-bit) ECC errors since driver load.", _NV),
    Metric("accel_ecc_corrected_total", "accel", "count", C, "Corrected ECC errors, lifetime.", _NV),
    Metric("accel_ecc_uncorrected_total", "accel", "count", C, "Uncorrected ECC errors, lifetime.", _NV),
    Metric("accel_retired_pages_total", "accel", "count", C, "Retired memory pages (pre-Ampere).", _NV),
    Metric("accel_remapped_rows_correctable_total", "accel", "count", C, "Rows remapped for correctable errors.", _NV),
    Metric("accel_remapped_rows_uncorrectable_total", "accel", "count", C, "Rows remapped for uncorrectable errors.", _NV),
    Metric("accel_remapped_rows_pending", "accel", "state", S, "1 when a row remap waits for a GPU reset.", _NV),
    Metric("accel_remapped_rows_failure", "accel", "state", S, "1 when row remapping failed (RMA).", _NV),
    Metric("accel_pcie_replay_total", "accel", "count", C, "PCIe replay counter.", _NV),
    Metric("accel_pcie_link_gen", "accel", "count", G, "Current PCIe link generation.", _ALL),
    Metric("accel_pcie_link_width", "accel", "count", G, "Current PCIe link width (lanes).", _ALL),
    Metric("accel_nvlink_crc_errors_total", "accel", "count", C, "NVLink CRC errors, all links.", _NV),
    Metric("accel_nvlink_replay_total", "accel", "count", C, "NVLink replay errors, all links.", _NV),
    Metric("accel_nvlink_recovery_total", "accel", "count", C, "NVLink recovery errors, all links.", _NV),
    Metric("accel_xid_total", "accel", "count", C, "XID errors seen by the collector.", _NV),
    Metric("accel_retired_pages_pending", "accel", "state", S, "1 when retired pages wait for a GPU reset (pre-Ampere).", _NV, ((0, "no"), (1, "yes"))),
    Metric("accel_mig_mode", "accel", "state", S, "MIG (multi-instance GPU) mode.", _NV, ((0, "disabled"), (1, "enabled"))),
    Metric("accel_xid_last", "accel", "state", S, "Number of the last XID error (dcgm-exporter DCGM_FI_DEV_XID_ERRORS).", ("dcgm",)),
    Metric("accel_tokens_total", "accel", "count", C, "Inference tokens generated (from the serving engine).", ("prom", "sim")),
    # the serving engine's request counters (vLLM's vllm:request_success_total, vllm:prompt_tokens_total,
    # vllm:num_requests_running), shared among the accelerators it serves on like the tokens
    Metric("accel_requests_total", "accel", "count", C, "Inference requests completed (from the serving engine).", ("prom", "sim")),
    Metric("accel_prompt_tokens_total", "accel", "count", C, "Prompt (prefill) tokens processed (from the serving engine).", ("prom", "sim")),
    Metric("accel_requests_running", "accel", "count", G, "Inference requests being processed now (from the serving engine).", ("prom", "sim")),
)
