"""A stand-in for the `pynvml` module: same function names, constants and exceptions.

The NVML agent is handed a module; on a real host that is `pynvml` (nvidia-ml-py), in tests
and in the demo it is an `NvmlStandin` over a backend of simulated GPUs. Return values have
the shapes pynvml returns (milliwatts, millijoules, structs with `.gpu`/`.memory`,
`.used`/`.total`, field-value records with `nvmlReturn` and a typed `value` union), and
failures raise `NVMLError` subclasses with NVML's error codes, mapped the way pynvml maps
them (`NVMLError(3)` is an `NVMLError_NotSupported`).

Backends:
- `StaticBackend`: a list of `FakeGpu` whose values tests set directly; covers MIG enabled,
  ECC not supported, a GPU lost after N more calls (in the middle of a poll), and a driver
  that is not loaded (`init_error`).
- `SimBackend` (in `dcops.collectors.sim_agents`): the GPUs of one server of `dcops.sim`.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Protocol

from dcops.collectors.nvml_constants import CONSTANTS as _CONSTANTS, ERROR_CLASSES as _ERROR_CLASSES
from dcops.collectors.nvml_constants import GPU_IS_LOST, NOT_SUPPORTED, NVMLError, TIMEOUT

__all__ = ["FakeGpu", "GpuBackend", "NVMLError", "NvmlStandin", "StaticBackend", "ECC_CALLS", "typical_gpu"]

globals().update(_ERROR_CLASSES)  # NVMLError_NotSupported, ... as module names, as in pynvml

# NVML calls that answer NOT_SUPPORTED on a GPU with ECC disabled or unsupported.
ECC_CALLS = frozenset({"nvmlDeviceGetTotalEccErrors", "nvmlDeviceGetRetiredPages",
                       "nvmlDeviceGetRetiredPagesPendingStatus", "nvmlDeviceGetRemappedRows"})


# ----- simulated GPUs ----------------------------------------------------------------------
@dataclass
class FakeGpu:
    """One simulated GPU. `values` holds catalogue metric names in canonical units."""

    uuid: str
    name: str = "NVIDIA H100 80GB HBM3"
    serial: str = "1650923000001"
    pci_bus_id: str = "00000000:18:00.0"
    vbios: str = "96.00.89.00.01"
    mig_mode: int = 0
    values: dict = field(default_factory=dict)
    unsupported: set = field(default_factory=set)  # NVML call names answering NOT_SUPPORTED
    lost: bool = False
    lose_after_calls: int | None = None  # becomes lost after this many more device calls
    retired_pages: tuple[tuple[int, ...], tuple[int, ...]] = ((), ())  # (single-bit, double-bit)
    power_limits_w: tuple[float, float, float] = (200.0, 700.0, 700.0)  # (min, max, default), an H100 SXM
    set_error: int | None = None  # NVML error code nvmlDeviceSetPowerManagementLimit answers (e.g. NO_PERMISSION)

    def value(self, metric: str) -> float:
        return self.values.get(metric, math.nan)

    def limits(self) -> tuple[float, float, float]:
        return self.power_limits_w

    def set_power_limit(self, watts: float) -> None:
        self.values["accel_power_limit_w"] = watts


class GpuBackend(Protocol):
    driver_version: str
    init_error: int | None

    def gpus(self) -> list[FakeGpu]: ...
    def take_xids(self) -> list[tuple[int, int]]: ...  # (gpu index, xid), consumed


class StaticBackend:
    """GPUs held in memory; tests change `gpus` and push XIDs with `push_xid`."""

    def __init__(self, gpus: list[FakeGpu], driver_version: str = "550.90.07",
                 init_error: int | None = None) -> None:
        self._gpus = gpus
        self.driver_version = driver_version
        self.init_error = init_error
        self._xids: list[tuple[int, int]] = []

    def gpus(self) -> list[FakeGpu]:
        return self._gpus

    def push_xid(self, index: int, xid: int) -> None:
        self._xids.append((index, xid))

    def take_xids(self) -> list[tuple[int, int]]:
        out, self._xids = self._xids, []
        return out


# ----- pynvml-shaped return values ---------------------------------------------------------
@dataclass(frozen=True)
class _Handle:
    index: int


@dataclass
class _Utilization:
    gpu: int
    memory: int


@dataclass
class _Memory:
    total: int
    free: int
    used: int


@dataclass
class _PciInfo:
    busId: bytes
    busIdLegacy: bytes


@dataclass
class _Value:
    dVal: float = 0.0
    uiVal: int = 0
    ulVal: int = 0
    ullVal: int = 0
    sllVal: int = 0
    siVal: int = 0
    usVal: int = 0


@dataclass
class _FieldValue:
    fieldId: int
    scopeId: int = 0
    timestamp: int = 0
    latencyUsec: int = 0
    valueType: int = 3
    nvmlReturn: int = 0
    value: _Value = field(default_factory=_Value)


@dataclass
class _EventData:
    device: _Handle
    eventType: int
    eventData: int
    gpuInstanceId: int = 0xFFFFFFFF
    computeInstanceId: int = 0xFFFFFFFF


_FIELD_METRIC = {  # field id -> (metric, scale from canonical unit to NVML's unit)
    82: ("accel_mem_temp_degc", 1.0),
    83: ("accel_energy_j_total", 1000.0),
    38: ("accel_nvlink_crc_errors_total", 1.0),
    45: (None, 0.0),  # data CRC: the simulator keeps one CRC total, reported as flit CRC
    52: ("accel_nvlink_replay_total", 1.0),
    59: ("accel_nvlink_recovery_total", 1.0),
}


_FIELD_KEYS: dict[int, str] = {}


def _field_key(fid: int) -> str:
    """The name a field id is marked unsupported by in `FakeGpu.unsupported` ("field:<id>")."""
    key = _FIELD_KEYS.get(fid)
    if key is None:
        key = _FIELD_KEYS[fid] = f"field:{fid}"
    return key


class NvmlStandin:
    """Quacks like the `pynvml` module, answering from a `GpuBackend`."""

    NVMLError = NVMLError

    def __init__(self, backend: GpuBackend) -> None:
        self.backend = backend
        self._init = 0
        self._cond = threading.Condition()
        self.calls = 0

    # ----- library ----------------------------------------------------------------------
    def nvmlInit(self) -> None:
        if self.backend.init_error is not None:
            raise NVMLError(self.backend.init_error)
        self._init += 1

    def nvmlInitWithFlags(self, flags: int) -> None:
        self.nvmlInit()

    def nvmlShutdown(self) -> None:
        self._need_init()
        self._init -= 1

    def _need_init(self) -> None:
        if self._init <= 0:
            raise NVMLError(_CONSTANTS["NVML_ERROR_UNINITIALIZED"])

    def nvmlSystemGetDriverVersion(self) -> str:
        self._need_init()
        return self.backend.driver_version

    def nvmlDeviceGetCount(self) -> int:
        self._need_init()
        return len(self.backend.gpus())

    def nvmlDeviceGetHandleByIndex(self, index: int) -> _Handle:
        self._need_init()
        if not 0 <= index < len(self.backend.gpus()):
            raise NVMLError(_CONSTANTS["NVML_ERROR_INVALID_ARGUMENT"])
        return _Handle(index)

    def _gpu(self, handle: _Handle, call: str) -> FakeGpu:
        self.calls += 1
        if self._init <= 0:
            raise NVMLError(_CONSTANTS["NVML_ERROR_UNINITIALIZED"])
        g = self.backend.gpus()[handle.index]
        if g.lose_after_calls is not None:
            if g.lose_after_calls <= 0:
                g.lost, g.lose_after_calls = True, None
            else:
                g.lose_after_calls -= 1
        if g.lost:
            raise NVMLError(GPU_IS_LOST)
        if call in g.unsupported:
            raise NVMLError(NOT_SUPPORTED)
        return g

    def _num(self, g: FakeGpu, metric: str) -> float:
        v = g.value(metric)
        if v != v:  # NaN: this GPU does not report it
            raise NVMLError(NOT_SUPPORTED)
        return v

    # ----- identity ---------------------------------------------------------------------
    def nvmlDeviceGetUUID(self, h) -> str:
        return self._gpu(h, "nvmlDeviceGetUUID").uuid

    def nvmlDeviceGetSerial(self, h) -> str:
        return self._gpu(h, "nvmlDeviceGetSerial").serial

    def nvmlDeviceGetName(self, h) -> str:
        return self._gpu(h, "nvmlDeviceGetName").name

    def nvmlDeviceGetVbiosVersion(self, h) -> str:
        return self._gpu(h, "nvmlDeviceGetVbiosVersion").vbios

    def nvmlDeviceGetPciInfo(self, h) -> _PciInfo:
        g = self._gpu(h, "nvmlDeviceGetPciInfo")
        return _PciInfo(g.pci_bus_id.encode(), g.pci_bus_id[4:].encode())

    def nvmlDeviceGetMigMode(self, h) -> list[int]:
        g = self._gpu(h, "nvmlDeviceGetMigMode")
        return [g.mig_mode, g.mig_mode]

    # ----- telemetry --------------------------------------------------------------------
    def nvmlDeviceGetTemperature(self, h, sensor: int) -> int:
        return int(round(self._num(self._gpu(h, "nvmlDeviceGetTemperature"), "accel_temp_degc")))

    def nvmlDeviceGetPowerUsage(self, h) -> int:
        return int(self._num(self._gpu(h, "nvmlDeviceGetPowerUsage"), "accel_power_w") * 1000)

    def nvmlDeviceGetEnforcedPowerLimit(self, h) -> int:
        return int(self._num(self._gpu(h, "nvmlDeviceGetEnforcedPowerLimit"), "accel_power_limit_w") * 1000)

    def nvmlDeviceGetTotalEnergyConsumption(self, h) -> int:
        return int(self._num(self._gpu(h, "nvmlDeviceGetTotalEnergyConsumption"), "accel_energy_j_total") * 1000)

    def nvmlDeviceGetClockInfo(self, h, clock_type: int) -> int:
        g = self._gpu(h, "nvmlDeviceGetClockInfo")
        metric = "accel_mem_clock_mhz" if clock_type == 2 else "accel_sm_clock_mhz"
        return int(self._num(g, metric))

    def nvmlDeviceGetUtilizationRates(self, h) -> _Utilization:
        g = self._gpu(h, "nvmlDeviceGetUtilizationRates")
        if g.mig_mode:  # whole-GPU utilisation is not reported while MIG is enabled
            raise NVMLError(NOT_SUPPORTED)
        return _Utilization(int(self._num(g, "accel_util_pct")), int(self._num(g, "accel_mem_util_pct")))

    def nvmlDeviceGetMemoryInfo(self, h, version=None) -> _Memory:
        g = self._gpu(h, "nvmlDeviceGetMemoryInfo")
        total, used = int(self._num(g, "accel_mem_total_bytes")), int(self._num(g, "accel_mem_used_bytes"))
        return _Memory(total, total - used, used)

    def nvmlDeviceGetFanSpeed(self, h) -> int:
        return int(self._num(self._gpu(h, "nvmlDeviceGetFanSpeed"), "accel_fan_pct"))

    def nvmlDeviceGetPerformanceState(self, h) -> int:
        return int(self._num(self._gpu(h, "nvmlDeviceGetPerformanceState"), "accel_pstate"))

    def nvmlDeviceGetCurrentClocksEventReasons(self, h) -> int:
        g = self._gpu(h, "nvmlDeviceGetCurrentClocksEventReasons")
        mask = g.value("accel_throttle_reasons")
        if mask != mask:  # derive from the simulator's flags
            thermal, power = g.value("accel_thermal_throttle"), g.value("accel_power_throttle")
            if thermal != thermal and power != power:
                raise NVMLError(NOT_SUPPORTED)
            mask = (0x20 if thermal == 1 else 0) | (0x4 if power == 1 else 0)
        return int(mask)

    nvmlDeviceGetCurrentClocksThrottleReasons = nvmlDeviceGetCurrentClocksEventReasons

    def nvmlDeviceGetTotalEccErrors(self, h, error_type: int, counter_type: int) -> int:
        g = self._gpu(h, "nvmlDeviceGetTotalEccErrors")
        metric = {(0, 0): "accel_ecc_volatile_corrected", (1, 0): "accel_ecc_volatile_uncorrected",
                  (0, 1): "accel_ecc_corrected_total", (1, 1): "accel_ecc_uncorrected_total"}[(error_type, counter_type)]
        return int(self._num(g, metric))

    def nvmlDeviceGetRetiredPages(self, h, cause: int) -> list[int]:
        return list(self._gpu(h, "nvmlDeviceGetRetiredPages").retired_pages[cause])

    def nvmlDeviceGetRetiredPagesPendingStatus(self, h) -> int:
        g = self._gpu(h, "nvmlDeviceGetRetiredPagesPendingStatus")
        v = g.value("accel_retired_pages_pending")
        return int(v) if v == v else 0

    def nvmlDeviceGetRemappedRows(self, h) -> tuple[int, int, int, int]:
        g = self._gpu(h, "nvmlDeviceGetRemappedRows")
        return tuple(int(self._num(g, m)) for m in (
            "accel_remapped_rows_correctable_total", "accel_remapped_rows_uncorrectable_total",
            "accel_remapped_rows_pending", "accel_remapped_rows_failure"))

    def nvmlDeviceGetPcieReplayCounter(self, h) -> int:
        return int(self._num(self._gpu(h, "nvmlDeviceGetPcieReplayCounter"), "accel_pcie_replay_total"))

    def nvmlDeviceGetCurrPcieLinkGeneration(self, h) -> int:
        return int(self._num(self._gpu(h, "nvmlDeviceGetCurrPcieLinkGeneration"), "accel_pcie_link_gen"))

    def nvmlDeviceGetCurrPcieLinkWidth(self, h) -> int:
        return int(self._num(self._gpu(h, "nvmlDeviceGetCurrPcieLinkWidth"), "accel_pcie_link_width"))

    def nvmlDeviceGetFieldValues(self, h, field_ids) -> list[_FieldValue]:
        g = self._gpu(h, "nvmlDeviceGetFieldValues")
        out = []
        value, unsupported = g.value, g.unsupported
        for fid in field_ids:
            metric, scale = _FIELD_METRIC.get(fid, (None, 0.0))
            v = value(metric) if metric else (0.0 if fid == 45 else math.nan)
            if v != v or (unsupported and _field_key(fid) in unsupported):
                out.append(_FieldValue(fid, nvmlReturn=NOT_SUPPORTED))
            elif fid == 82:
                out.append(_FieldValue(fid, valueType=1, value=_Value(uiVal=int(round(v)))))
            else:
                out.append(_FieldValue(fid, valueType=3, value=_Value(ullVal=int(v * scale))))
        return out

    # ----- events -----------------------------------------------------------------------
    def nvmlEventSetCreate(self) -> dict:
        self._need_init()
        return {"registered": set()}

    def nvmlDeviceRegisterEvents(self, h, event_types: int, event_set: dict) -> None:
        self._gpu(h, "nvmlDeviceRegisterEvents")
        event_set["registered"].add(h.index)

    def nvmlEventSetWait_v2(self, event_set: dict, timeout_ms: int) -> _EventData:
        self._need_init()
        pending = event_set.setdefault("pending", [])
        if not pending:
            pending.extend(x for x in self.backend.take_xids() if x[0] in event_set["registered"])
        if not pending and timeout_ms > 0:
            with self._cond:
                self._cond.wait(timeout_ms / 1000.0)
            pending.extend(x for x in self.backend.take_xids() if x[0] in event_set["registered"])
        if not pending:
            raise NVMLError(TIMEOUT)
        index, xid = pending.pop(0)
        return _EventData(_Handle(index), _CONSTANTS["nvmlEventTypeXidCriticalError"], xid)

    nvmlEventSetWait = nvmlEventSetWait_v2

    def nvmlEventSetFree(self, event_set: dict) -> None:
        event_set["registered"].clear()

    # ----- power management (the agent's control API) ----------------------------------
    def nvmlDeviceGetPowerManagementLimitConstraints(self, h) -> list[int]:
        lo, hi, _ = self._gpu(h, "nvmlDeviceGetPowerManagementLimitConstraints").limits()
        return [int(lo * 1000), int(hi * 1000)]

    def nvmlDeviceGetPowerManagementDefaultLimit(self, h) -> int:
        return int(self._gpu(h, "nvmlDeviceGetPowerManagementDefaultLimit").limits()[2] * 1000)

    def nvmlDeviceGetPowerManagementLimit(self, h) -> int:
        return int(round(self._num(self._gpu(h, "nvmlDeviceGetPowerManagementLimit"), "accel_power_limit_w") * 1000))

    def nvmlDeviceSetPowerManagementLimit(self, h, limit_mw: int) -> None:
        g = self._gpu(h, "nvmlDeviceSetPowerManagementLimit")
        if g.set_error is not None:
            raise NVMLError(g.set_error)
        lo, hi, _ = g.limits()
        if not isinstance(limit_mw, int) or not lo * 1000 <= limit_mw <= hi * 1000:
            raise NVMLError(_CONSTANTS["NVML_ERROR_INVALID_ARGUMENT"])
        g.set_power_limit(limit_mw / 1000.0)

    def wake(self) -> None:
        """Wake a thread blocked in nvmlEventSetWait_v2 (after a test pushed an XID)."""
        with self._cond:
            self._cond.notify_all()


for _k, _v in {**_CONSTANTS, **_ERROR_CLASSES}.items():
    setattr(NvmlStandin, _k, _v)


def typical_gpu(index: int, **changes) -> FakeGpu:
    """A busy H100 SXM with plausible readings (for tests, the benchmark and `--standin-*`)."""
    values = {
        "accel_temp_degc": 61.0 + index, "accel_mem_temp_degc": 68.0 + index, "accel_power_w": 512.25,
        "accel_power_limit_w": 700.0, "accel_energy_j_total": 3.6e9 + index, "accel_sm_clock_mhz": 1980.0,
        "accel_mem_clock_mhz": 2619.0, "accel_util_pct": 87.0, "accel_mem_util_pct": 41.0,
        "accel_mem_used_bytes": 61 * 2**30, "accel_mem_total_bytes": 80 * 2**30, "accel_fan_pct": math.nan,
        "accel_pstate": 0.0, "accel_throttle_reasons": 0.0, "accel_ecc_volatile_corrected": 0.0,
        "accel_ecc_volatile_uncorrected": 0.0, "accel_ecc_corrected_total": 12.0, "accel_ecc_uncorrected_total": 0.0,
        "accel_remapped_rows_correctable_total": 1.0, "accel_remapped_rows_uncorrectable_total": 0.0,
        "accel_remapped_rows_pending": 0.0, "accel_remapped_rows_failure": 0.0, "accel_pcie_replay_total": 3.0,
        "accel_pcie_link_gen": 5.0, "accel_pcie_link_width": 16.0, "accel_nvlink_crc_errors_total": 0.0,
        "accel_nvlink_replay_total": 0.0, "accel_nvlink_recovery_total": 0.0,
    }
    gpu = FakeGpu(uuid=f"GPU-7c1f{index:04x}-5b2e-4a7d-9d8e-{0x3a00 + index:012x}",
                  serial=f"16509230{index:05d}", pci_bus_id=f"00000000:{0x18 + 0x11 * index:02X}:00.0",
                  values=values, unsupported={"nvmlDeviceGetRetiredPages"})
    for k, v in changes.items():
        setattr(gpu, k, v)
    return gpu
