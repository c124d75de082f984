"""Constants of the simulated hardware, as data: per accelerator model and per vendor."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["AccelModel", "SERVING", "ServingMix", "accel_model", "THROTTLE_BITS", "PEUKERT", "UPS_RATED_LOAD", "ups_runtime_s"]


@dataclass(frozen=True)
class AccelModel:
    sm_clock_mhz: float
    mem_clock_mhz: float
    r_th: float  # degC per W from inlet air to die at nominal fan
    slowdown_degc: float  # core temperature where thermal throttling starts
    mem_slowdown_degc: float  # HBM temperature where throttling starts
    idle_fraction: float  # idle power as a share of TDP
    tokens_per_s: float  # generation throughput at full load
    pcie_gen: int
    pcie_width: int


_MODELS = {
    "H100-SXM5-80GB": AccelModel(1980, 2619, 0.062, 87.0, 95.0, 0.10, 2400, 5, 16),
    "H200-SXM5-141GB": AccelModel(1980, 3200, 0.060, 87.0, 95.0, 0.10, 3000, 5, 16),
    "B200-SXM-180GB": AccelModel(1965, 4000, 0.050, 87.0, 95.0, 0.10, 4500, 6, 16),
    "L40S": AccelModel(2520, 9001, 0.110, 88.0, 95.0, 0.09, 900, 4, 16),
    "RBLN-CA22": AccelModel(1300, 8000, 0.230, 85.0, 95.0, 0.15, 650, 5, 16),
}
_VENDOR_DEFAULT = {
    "nvidia": _MODELS["H100-SXM5-80GB"],
    "rebellions": _MODELS["RBLN-CA22"],
}
_FALLBACK = AccelModel(1800, 2000, 0.08, 87.0, 95.0, 0.10, 1000, 4, 16)


def accel_model(vendor: str, model: str) -> AccelModel:
    return _MODELS.get(model) or _VENDOR_DEFAULT.get(vendor) or _FALLBACK


@dataclass(frozen=True)
class ServingMix:
    """What an inference engine (vLLM) serves on every accelerator: requests of these mean sizes,
    each decoded at `decode_tokens_per_s`. Requests completed follow the generated tokens
    (tokens / mean generation length), prompt tokens follow them too, and the requests in flight
    follow Little's law (throughput / per-request decode speed): all zero on a lost accelerator,
    all lower in proportion on a throttled one."""

    generation_tokens_per_request: float = 300.0
    prompt_tokens_per_request: float = 1100.0
    decode_tokens_per_s: float = 35.0


SERVING = ServingMix()


# NVML clock-event (throttle) reason bits (nvmlClocksEventReason*).
THROTTLE_BITS = {
    "gpu_idle": 0x1,
    "applications_clocks_setting": 0x2,
    "sw_power_cap": 0x4,
    "hw_slowdown": 0x8,
    "sync_boost": 0x10,
    "sw_thermal_slowdown": 0x20,
    "hw_thermal_slowdown": 0x40,
    "hw_power_brake_slowdown": 0x80,
    "display_clock_setting": 0x100,
}


# UPS battery: a site's `battery_runtime_s` is the runtime of a full battery at half the UPS's
# rated load. At other loads runtime follows Peukert's law, t = t_rated * (L_rated / L) ** k:
# twice the load empties it more than twice as fast (k = 1.2 for VRLA strings).
PEUKERT = 1.2
UPS_RATED_LOAD = 0.5


def ups_runtime_s(rated_s, load_frac):
    """Seconds a full battery carries `load_frac` (share of the UPS's capacity; floored at 5 %)."""
    load = np.clip(np.asarray(load_frac, dtype=np.float64), 0.05, 1.5)
    return np.asarray(rated_s, dtype=np.float64) * (UPS_RATED_LOAD / load) ** PEUKERT
