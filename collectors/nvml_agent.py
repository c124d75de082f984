"""The per-host GPU agent: every GPU's health through NVML, one `accel` batch per poll.

The NVML module is injected: `load_pynvml()` is the one place that imports `pynvml`
(nvidia-ml-py); tests and the demo pass `dcops.collectors.nvml_standin.NvmlStandin` instead, and
the agent's code is the same either way.

What is read is declared as data (`READS`): each entry names the NVML call, the catalogue
metrics it fills, and how to turn NVML's answer into canonical units. Errors are handled per
call and per GPU:

- NOT_SUPPORTED: that read is skipped for this GPU from then on (NVML's answer is permanent
  for a device; the skip list is reset when identities are re-read);
- GPU_IS_LOST: the GPU's row reports `accel_up = 0`, an `accel_lost` event is raised once,
  and the GPU is probed again next poll (`accel_recovered` when it answers);
- FUNCTION_NOT_FOUND (an older driver) is treated like NOT_SUPPORTED;
- anything else from NVML: logged once per (GPU, call, error) with the GPU's index and UUID,
  counted in `errors`, and the poll goes on. One GPU never stops the others.
- an exception that is not an NVMLError (the binding does not match the driver: a missing
  symbol, a changed struct) is a bug, not a quiet GPU: it is logged at ERROR, listed in
  `problems` (which `dcops agent` prints and the role logs), and with `strict=True` (tests,
  `dcops agent --strict`, the device check) raised as `NvmlBindingError`.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from dcops.batch import Batch, Event
from dcops.topology import Inventory
from dcops.collectors.accel_common import (POWER_BITS, THERMAL_BITS, accel_targets, build_accel_batch,
                                     lost_event, recovered_event)

__all__ = ["GpuIdentity", "NvmlAgent", "NvmlBindingError", "NvmlRead", "NvmlUnavailable", "READS", "load_pynvml", "run_sim_agents"]

log = logging.getLogger(__name__)
NAN = math.nan


class NvmlUnavailable(RuntimeError):
    """NVML cannot be used on this host (library missing, driver not loaded, no permission)."""


class NvmlBindingError(RuntimeError):
    """A read failed with something other than an NVMLError: the binding and driver disagree."""


def load_pynvml():
    """Import nvidia-ml-py's `pynvml`: the only place in dcops that does."""
    try:
        import pynvml
    except ImportError as exc:  # pragma: no cover - it is a declared dependency
        raise NvmlUnavailable(f"nvidia-ml-py (module pynvml) is not installed: {exc}") from None
    return pynvml


def _text(v) -> str:
    return v.decode(errors="replace") if isinstance(v, bytes) else str(v)


@dataclass(frozen=True)
class GpuIdentity:
    index: int
    uuid: str
    serial: str
    pci_bus_id: str
    model: str
    driver_version: str
    vbios_version: str
    mig_mode: int  # -1 when not supported

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class NvmlRead:
    """One NVML call and the catalogue metrics it fills, in canonical units."""

    call: str
    metrics: tuple[str, ...]
    read: Callable[[object, object], Sequence[float]]


def _field_number(fv) -> float:
    if fv.nvmlReturn != 0:
        return NAN
    member = ("dVal", "uiVal", "ulVal", "ullVal", "sllVal", "siVal", "usVal")[fv.valueType]
    return float(getattr(fv.value, member))


def _fields(n, h):
    vals = n.nvmlDeviceGetFieldValues(h, _FIELD_IDS(n))
    for fv in vals:
        if fv.nvmlReturn == n.NVML_ERROR_GPU_IS_LOST:
            raise n.NVMLError(fv.nvmlReturn)
    mem_t, energy_mj, crc_flit, crc_data, replay, recovery = (_field_number(fv) for fv in vals)
    crc = crc_flit + crc_data if crc_data == crc_data else crc_flit
    return mem_t, energy_mj / 1000.0, crc, replay, recovery


def _FIELD_IDS(n):
    return (n.NVML_FI_DEV_MEMORY_TEMP, n.NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION,
            n.NVML_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL, n.NVML_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL,
            n.NVML_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL, n.NVML_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL)


def _reasons(n, h):
    # nvidia-ml-py renamed "throttle reasons" to "clocks event reasons"; older versions have only the old name.
    fn = getattr(n, "nvmlDeviceGetCurrentClocksEventReasons", None) or n.nvmlDeviceGetCurrentClocksThrottleReasons
    mask = int(fn(h))
    return mask, 1.0 if mask & THERMAL_BITS else 0.0, 1.0 if mask & POWER_BITS else 0.0


def _ecc(n, h):
    c, u, vol, agg = (n.NVML_MEMORY_ERROR_TYPE_CORRECTED, n.NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
                      n.NVML_VOLATILE_ECC, n.NVML_AGGREGATE_ECC)
    f = n.nvmlDeviceGetTotalEccErrors
    return f(h, c, vol), f(h, u, vol), f(h, c, agg), f(h, u, agg)


def _retired(n, h):
    sbe = n.nvmlDeviceGetRetiredPages(h, n.NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS)
    dbe = n.nvmlDeviceGetRetiredPages(h, n.NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR)
    pending = n.nvmlDeviceGetRetiredPagesPendingStatus(h)
    return len(sbe) + len(dbe), 1.0 if pending else 0.0


def _util(n, h):
    u = n.nvmlDeviceGetUtilizationRates(h)
    return u.gpu, u.memory


def _mem(n, h):
    m = n.nvmlDeviceGetMemoryInfo(h)
    return m.used, m.total


READS: tuple[NvmlRead, ...] = (
    NvmlRead("nvmlDeviceGetTemperature", ("accel_temp_degc",), lambda n, h: (n.nvmlDeviceGetTemperature(h, n.NVML_TEMPERATURE_GPU),)),
    NvmlRead("nvmlDeviceGetPowerUsage", ("accel_power_w",), lambda n, h: (n.nvmlDeviceGetPowerUsage(h) / 1000.0,)),
    NvmlRead("nvmlDeviceGetEnforcedPowerLimit", ("accel_power_limit_w",), lambda n, h: (n.nvmlDeviceGetEnforcedPowerLimit(h) / 1000.0,)),
    NvmlRead("nvmlDeviceGetFieldValues", ("accel_mem_temp_degc", "accel_energy_j_total", "accel_nvlink_crc_errors_total",
                                          "accel_nvlink_replay_total", "accel_nvlink_recovery_total"), _fields),
    NvmlRead("nvmlDeviceGetClockInfo", ("accel_sm_clock_mhz", "accel_mem_clock_mhz"),
             lambda n, h: (n.nvmlDeviceGetClockInfo(h, n.NVML_CLOCK_SM), n.nvmlDeviceGetClockInfo(h, n.NVML_CLOCK_MEM))),
    NvmlRead("nvmlDeviceGetUtilizationRates", ("accel_util_pct", "accel_mem_util_pct"), _util),
    NvmlRead("nvmlDeviceGetMemoryInfo", ("accel_mem_used_bytes", "accel_mem_total_bytes"), _mem),
    NvmlRead("nvmlDeviceGetFanSpeed", ("accel_fan_pct",), lambda n, h: (n.nvmlDeviceGetFanSpeed(h),)),
    NvmlRead("nvmlDeviceGetPerformanceState", ("accel_pstate",), lambda n, h: (n.nvmlDeviceGetPerformanceState(h),)),
    NvmlRead("nvmlDeviceGetCurrentClocksEventReasons", ("accel_throttle_reasons", "accel_thermal_throttle", "accel_power_throttle"), _reasons),
    NvmlRead("nvmlDeviceGetTotalEccErrors", ("accel_ecc_volatile_corrected", "accel_ecc_volatile_uncorrected",
                                             "accel_ecc_corrected_total", "accel_ecc_uncorrected_total"), _ecc),
    NvmlRead("nvmlDeviceGetRetiredPages", ("accel_retired_pages_total", "accel_retired_pages_pending"), _retired),
    NvmlRead("nvmlDeviceGetRemappedRows", ("accel_remapped_rows_correctable_total", "accel_remapped_rows_uncorrectable_total",
                                           "accel_remapped_rows_pending", "accel_remapped_rows_failure"),
             lambda n, h: n.nvmlDeviceGetRemappedRows(h)),
    NvmlRead("nvmlDeviceGetPcieReplayCounter", ("accel_pcie_replay_total",), lambda n, h: (n.nvmlDeviceGetPcieReplayCounter(h),)),
    NvmlRead("nvmlDeviceGetCurrPcieLink", ("accel_pcie_link_gen", "accel_pcie_link_width"),
             lambda n, h: (n.nvmlDeviceGetCurrPcieLinkGeneration(h), n.nvmlDeviceGetCurrPcieLinkWidth(h))),
)


class NvmlAgent:
    """Polls every GPU of one host. `start()` once, then `poll()` each interval."""

    def __init__(self, nvml, host: str, inventory: Inventory | None = None,
                 clock: Callable[[], int] = time.time_ns, source: str = "nvml",
                 reads: Sequence[NvmlRead] = READS, strict: bool = False) -> None:
        self.nvml = nvml
        self.strict = strict
        self.problems: list[str] = []  # binding errors (not NVML errors), one line each
        self.host = host
        self.inventory = inventory
        self.clock = clock
        self.source = source
        self.reads = tuple(reads)
        self.columns: tuple[str, ...] = ("accel_up", "accel_mig_mode", "accel_xid_total") + tuple(
            m for r in self.reads for m in r.metrics)
        self._col = {m: j for j, m in enumerate(self.columns)}
        self._slots = tuple((r, tuple(self._col[m] for m in r.metrics)) for r in self.reads)  # read -> its columns
        self.identities: list[GpuIdentity] = []
        self.targets: list[dict[str, str]] = []
        self.handles: list = []
        self.errors = 0
        self._skip: list[set[str]] = []
        self._lost: list[bool] = []
        self._xids: list[int] = []
        self._logged: set[tuple] = set()
        self._started = False

    # ----- discovery --------------------------------------------------------------------
    def start(self) -> list[GpuIdentity]:
        """nvmlInit and read every GPU's identity. Raises NvmlUnavailable when NVML cannot run."""
        n = self.nvml
        try:
            n.nvmlInit()
        except n.NVMLError as exc:
            raise NvmlUnavailable(f"NVML cannot start on {self.host}: {exc} (NVML error {exc.value}); "
                                  "is the NVIDIA driver installed and loaded?") from None
        self._started = True
        driver = _text(n.nvmlSystemGetDriverVersion())
        count = n.nvmlDeviceGetCount()
        self.handles = [n.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        self.identities = [self._identity(i, h, driver) for i, h in enumerate(self.handles)]
        ids = self.identities
        self.targets = accel_targets(self.host, [g.index for g in ids], ["nvidia"] * len(ids),
                                     [g.model for g in ids], [g.uuid for g in ids], self.inventory)
        self._skip = [set() for _ in ids]
        self._lost = [False] * len(ids)
        self._xids = [0] * len(ids)
        return self.identities

    def _identity(self, i: int, h, driver: str) -> GpuIdentity:
        """Read one GPU's identity; a GPU that is lost gets placeholders until it answers."""
        n = self.nvml
        lost = False

        def get(fn, default="", *args):
            nonlocal lost
            if lost:
                return default
            try:
                return fn(h, *args)
            except n.NVMLError as exc:
                if exc.value == n.NVML_ERROR_GPU_IS_LOST:
                    lost = True
                elif exc.value != n.NVML_ERROR_NOT_SUPPORTED:
                    self._log_once(i, fn.__name__, exc)
                return default

        uuid = _text(get(n.nvmlDeviceGetUUID, f"{self.host}:{i}"))
        pci = get(n.nvmlDeviceGetPciInfo, None)
        mig = get(n.nvmlDeviceGetMigMode, None)
        return GpuIdentity(
            index=i, uuid=uuid, serial=_text(get(n.nvmlDeviceGetSerial)),
            pci_bus_id=_text(pci.busId) if pci is not None else "", model=_text(get(n.nvmlDeviceGetName)),
            driver_version=driver, vbios_version=_text(get(n.nvmlDeviceGetVbiosVersion)),
            mig_mode=int(mig[0]) if mig is not None else -1)

    def close(self) -> None:
        if self._started:
            try:
                self.nvml.nvmlShutdown()
            except self.nvml.NVMLError:
                pass
            self._started = False

    # ----- polling ----------------------------------------------------------------------
    def poll(self) -> tuple[Batch, list[Event]]:
        """Read every GPU once: one `accel` batch (a row per GPU) and any lost/recovered events."""
        if not self._started:
            self.start()
        n = self.nvml
        NVMLError = n.NVMLError
        permanent = (n.NVML_ERROR_NOT_SUPPORTED, n.NVML_ERROR_FUNCTION_NOT_FOUND)
        gpu_lost = n.NVML_ERROR_GPU_IS_LOST
        now = self.clock()
        events: list[Event] = []
        rows = []
        for i, h in enumerate(self.handles):
            row = [NAN] * len(self.columns)
            skip = self._skip[i]
            lost_detail = None
            for r, cols in self._slots:
                if r.call in skip:
                    continue
                try:
                    vals = r.read(n, h)
                except NVMLError as exc:
                    if exc.value in permanent:  # this GPU/driver will never answer it: stop asking
                        skip.add(r.call)
                    elif exc.value == gpu_lost:
                        lost_detail = f"{r.call}: {exc}"
                        break
                    else:
                        self.errors += 1
                        self._log_once(i, r.call, exc)
                    continue
                except Exception as exc:  # a binding that lacks the call, a bad struct: loud, never a quiet NaN
                    self.errors += 1
                    skip.add(r.call)
                    uuid = self.identities[i].uuid if i < len(self.identities) else "?"
                    msg = f"GPU {i} ({uuid}): {r.call} raised {type(exc).__name__}: {exc} (binding/driver mismatch?)"
                    self.problems.append(msg)
                    log.error("%s %s", self.host, msg)
                    if self.strict:
                        raise NvmlBindingError(msg) from exc
                    continue
                for j, v in zip(cols, vals):
                    row[j] = v
            if lost_detail is not None:
                row = [NAN] * len(self.columns)
                row[0] = 0.0
                if not self._lost[i]:
                    self._lost[i] = True
                    events.append(lost_event(now, self.targets[i], self.source, lost_detail))
            else:
                row[0] = 1.0
                mig = self.identities[i].mig_mode
                row[1] = float(mig) if mig >= 0 else NAN
                row[2] = float(self._xids[i])
                if self._lost[i]:
                    self._lost[i] = False
                    if self.identities[i].uuid == f"{self.host}:{i}":  # lost since start: read it now
                        self._reidentify(i)
                    events.append(recovered_event(now, self.targets[i], self.source))
            rows.append(row)
        return build_accel_batch(now, self.targets, self.columns, rows), events

    def _reidentify(self, i: int) -> None:
        g = self._identity(i, self.handles[i], self.identities[i].driver_version)
        self.identities[i] = g
        t = accel_targets(self.host, [i], ["nvidia"], [g.model], [g.uuid], self.inventory)[0]
        self.targets[i].update(t)

    def count_xids(self, events: Sequence[Event]) -> None:
        """Feed the XID watcher's events back so `accel_xid_total` counts them per GPU."""
        by_uuid = {g.uuid: i for i, g in enumerate(self.identities)}
        for e in events:
            i = by_uuid.get(str(e.attributes.get("uuid", "")))
            if e.kind == "xid" and i is not None:
                self._xids[i] += 1

    def _log_once(self, i: int, call: str, exc) -> None:
        key = (i, call, getattr(exc, "value", None))
        if key in self._logged:
            return
        self._logged.add(key)
        uuid = self.identities[i].uuid if i < len(self.identities) else "?"
        log.warning("%s GPU %d (%s): %s failed: %s (NVML error %s); skipping this value",
                    self.host, i, uuid, call, exc, getattr(exc, "value", "?"))


def run_sim_agents(sim, bus, stop_event, interval_s: float = 10.0, **kwargs):
    """One agent per simulated server (GPU: NVML stand-in; NPU: rbln-stat stand-in), one thread.

    See `dcops.collectors.sim_agents.run_sim_agents` for the parameters."""
    from dcops.collectors.sim_agents import run_sim_agents as _run

    return _run(sim, bus, stop_event, interval_s, **kwargs)
