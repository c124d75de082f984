"""Accelerator power limits as an outage response: set, read back, restore, expire.

When cooling or power is lost, capping accelerator power buys minutes of thermal ride-through
or battery runtime. `PowerController` is the one place that changes a limit on a host:

- a request names accelerators (indices, or all of them), an absolute value in watts or a
  fraction of each device's *default* limit, who asks, why (incident, runbook step) and a
  lease (`ttl_s`); the value is clamped to the device's [min, max] constraints and the
  applied limit is read back from the device;
- the limit a device had before dcops first capped it is remembered, and a cap that nobody
  renews before its lease ends reverts to it (`expire()`, called by the agent's control API
  every second): a crashed runbook never leaves a hall capped;
- every change (set, restore, expiry, refusal by the device) is handed to the `audit`
  callable with who, why, before and after.

Devices are reached through a `PowerBackend` per vendor: `NvmlPowerBackend` (NVML's
power-management calls, through the same injected `pynvml` module as the poller) and
`UnsupportedPowerBackend` for devices whose tool offers no power limit (Rebellions'
`rbln-stat` has none today): such devices say so in `capabilities()` and refuse requests with
the reason instead of pretending.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

__all__ = ["PowerControlError", "PowerLimitUnsupported", "Constraints", "PowerBackend", "NvmlPowerBackend", "controller_for",
           "UnsupportedPowerBackend", "CapRequest", "CapResult", "PowerController"]

log = logging.getLogger(__name__)

MAX_TTL_S = 24 * 3600.0


class PowerControlError(RuntimeError):
    """A limit could not be read or set on a device (permission, driver, bad request)."""


class PowerLimitUnsupported(PowerControlError):
    """The device (or its vendor tool) offers no way to set a power limit."""


@dataclass(frozen=True)
class Constraints:
    min_w: float
    max_w: float
    default_w: float


class PowerBackend(Protocol):
    vendor: str

    def count(self) -> int: ...
    def device_id(self, index: int) -> str: ...
    def constraints(self, index: int) -> Constraints: ...
    def get_limit(self, index: int) -> float: ...
    def set_limit(self, index: int, watts: float) -> None: ...


class NvmlPowerBackend:
    """NVIDIA GPUs through NVML (`pynvml` or the stand-in with the same names and errors).

    NVML works in milliwatts. Setting a limit needs root (or CAP_SYS_ADMIN): an agent running as
    another user gets NVML_ERROR_NO_PERMISSION, reported as such with what to do about it."""

    vendor = "nvidia"

    def __init__(self, nvml, uuids: Sequence[str] | None = None) -> None:
        self.nvml = nvml
        self.handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())]
        self.uuids = list(uuids) if uuids is not None else [str(i) for i in range(len(self.handles))]

    def count(self) -> int:
        return len(self.handles)

    def device_id(self, index: int) -> str:
        return self.uuids[index]

    def _call(self, what: str, fn, *args):
        n = self.nvml
        try:
            return fn(*args)
        except n.NVMLError as exc:
            code = getattr(exc, "value", None)
            if code in (n.NVML_ERROR_NOT_SUPPORTED, getattr(n, "NVML_ERROR_FUNCTION_NOT_FOUND", -1)):
                raise PowerLimitUnsupported(f"GPU {self.uuids[args[0] if isinstance(args[0], int) else 0]}: "
                                            f"{what} is not supported by this GPU or driver (NVML error {code})") from None
            if code == n.NVML_ERROR_NO_PERMISSION:
                raise PowerControlError(f"{what}: permission denied (NVML error {code}); setting power limits "
                                        "needs the agent to run as root or with CAP_SYS_ADMIN") from None
            raise PowerControlError(f"{what} failed: {exc} (NVML error {code})") from None

    def constraints(self, index: int) -> Constraints:
        h = self.handles[index]
        lo, hi = self._call("nvmlDeviceGetPowerManagementLimitConstraints",
                            lambda: self.nvml.nvmlDeviceGetPowerManagementLimitConstraints(h))
        default = self._call("nvmlDeviceGetPowerManagementDefaultLimit",
                             lambda: self.nvml.nvmlDeviceGetPowerManagementDefaultLimit(h))
        return Constraints(lo / 1000.0, hi / 1000.0, default / 1000.0)

    def get_limit(self, index: int) -> float:
        h = self.handles[index]
        return self._call("nvmlDeviceGetPowerManagementLimit",
                          lambda: self.nvml.nvmlDeviceGetPowerManagementLimit(h)) / 1000.0

    def set_limit(self, index: int, watts: float) -> None:
        h = self.handles[index]
        self._call("nvmlDeviceSetPowerManagementLimit",
                   lambda: self.nvml.nvmlDeviceSetPowerManagementLimit(h, int(round(watts * 1000))))


class UnsupportedPowerBackend:
    """Devices that can be read but not capped; every call says why."""

    def __init__(self, vendor: str, ids: Sequence[str], reason: str) -> None:
        self.vendor, self.ids, self.reason = vendor, list(ids), reason

    def count(self) -> int:
        return len(self.ids)

    def device_id(self, index: int) -> str:
        return self.ids[index]

    def _no(self, *_):
        raise PowerLimitUnsupported(self.reason)

    constraints = get_limit = _no

    def set_limit(self, index: int, watts: float) -> None:
        self._no()


@dataclass(frozen=True)
class CapRequest:
    """Cap `accels` (indices on this host; empty = all) at `watts`, or at `fraction` of each
    device's default limit, for `ttl_s` seconds unless renewed."""

    accels: tuple[int, ...]
    ttl_s: float
    requested_by: str
    reason: str
    watts: float | None = None
    fraction: float | None = None
    incident: str = ""
    step: str = ""

    def __post_init__(self) -> None:
        if (self.watts is None) == (self.fraction is None):
            raise ValueError("give exactly one of 'watts' and 'fraction'")
        if self.watts is not None and not (math.isfinite(self.watts) and self.watts > 0):
            raise ValueError(f"'watts' must be a positive number, not {self.watts!r}")
        if self.fraction is not None and not (math.isfinite(self.fraction) and 0.0 < self.fraction <= 1.0):
            raise ValueError(f"'fraction' must be in (0, 1], not {self.fraction!r}")
        if not (math.isfinite(self.ttl_s) and 0 < self.ttl_s <= MAX_TTL_S):
            raise ValueError(f"'ttl_s' must be in (0, {MAX_TTL_S:.0f}] seconds, not {self.ttl_s!r}")
        if not self.requested_by.strip() or not self.reason.strip():
            raise ValueError("'requested_by' and 'reason' are required: every cap says who asked and why")


@dataclass(frozen=True)
class CapResult:
    accel: int
    device: str
    ok: bool
    requested_w: float | None = None
    applied_w: float | None = None
    previous_w: float | None = None
    clamped: bool = False
    expires_at: float | None = None
    error: str = ""

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None and v != ""}


@dataclass
class _Lease:
    original_w: float
    expires_at: float
    requested_by: str
    reason: str
    incident: str = ""


@dataclass
class PowerController:
    """Power limits of one host's accelerators. Thread-safe; the clock is injected."""

    host: str
    backends: Sequence[PowerBackend]
    audit: Callable[[dict], None] = lambda record: None
    clock: Callable[[], float] = time.time
    _leases: dict[int, _Lease] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        self._index: list[tuple[PowerBackend, int]] = [(b, i) for b in self.backends for i in range(b.count())]

    def count(self) -> int:
        return len(self._index)

    def _dev(self, accel: int) -> tuple[PowerBackend, int]:
        if not 0 <= accel < len(self._index):
            raise PowerControlError(f"{self.host} has no accelerator {accel} (it has {len(self._index)})")
        return self._index[accel]

    # ----- reads ------------------------------------------------------------------------
    def capabilities(self) -> list[dict]:
        """Per accelerator: can its limit be set, its constraints, or why not."""
        out = []
        for k, (b, i) in enumerate(self._index):
            row = {"accel": k, "device": b.device_id(i), "vendor": b.vendor}
            try:
                c = b.constraints(i)
                row.update(settable=True, min_w=c.min_w, max_w=c.max_w, default_w=c.default_w)
            except PowerControlError as exc:
                row.update(settable=False, reason=str(exc))
            out.append(row)
        return out

    def state(self) -> list[dict]:
        """Per accelerator: the limit now (read from the device) and any dcops cap on it."""
        out = []
        with self._lock:
            leases = dict(self._leases)
        for k, (b, i) in enumerate(self._index):
            row: dict = {"accel": k, "device": b.device_id(i), "vendor": b.vendor}
            try:
                row["limit_w"] = b.get_limit(i)
            except PowerControlError as exc:
                row["error"] = str(exc)
            lease = leases.get(k)
            if lease is not None:
                row["capped"] = {"expires_at": lease.expires_at, "restore_to_w": lease.original_w,
                                 "requested_by": lease.requested_by, "reason": lease.reason, "incident": lease.incident}
            out.append(row)
        return out

    # ----- changes ----------------------------------------------------------------------
    def apply(self, req: CapRequest) -> list[CapResult]:
        accels = req.accels or tuple(range(len(self._index)))
        now = self.clock()
        results = []
        with self._lock:
            for k in accels:
                results.append(self._apply_one(k, req, now))
        return results

    def _apply_one(self, k: int, req: CapRequest, now: float) -> CapResult:
        try:
            b, i = self._dev(k)
        except PowerControlError as exc:
            return CapResult(k, "", False, error=str(exc))
        dev = b.device_id(i)
        try:
            c = b.constraints(i)
            before = b.get_limit(i)
            want = req.watts if req.watts is not None else req.fraction * c.default_w
            target = min(max(want, c.min_w), c.max_w)
            b.set_limit(i, target)
            applied = b.get_limit(i)
        except PowerControlError as exc:
            self._audit("power_cap_refused", k, dev, req, error=str(exc))
            return CapResult(k, dev, False, requested_w=req.watts, error=str(exc))
        lease = self._leases.get(k)
        original = lease.original_w if lease is not None else before
        expires = now + req.ttl_s
        self._leases[k] = _Lease(original, expires, req.requested_by, req.reason, req.incident)
        clamped = abs(target - want) > 1e-6
        self._audit("power_cap_set", k, dev, req, before_w=before, after_w=applied, requested_w=round(want, 3),
                    clamped=clamped, expires_at=expires, restore_to_w=original)
        return CapResult(k, dev, True, round(want, 3), applied, before, clamped, expires)

    def restore(self, accels: Sequence[int], requested_by: str, reason: str) -> list[CapResult]:
        """Put back the limit each device had before dcops capped it (no-op where not capped)."""
        if not requested_by.strip() or not reason.strip():
            raise ValueError("'requested_by' and 'reason' are required")
        with self._lock:
            targets = accels or sorted(self._leases)
            return [self._restore_one(k, "power_cap_restored", requested_by, reason) for k in targets]

    def expire(self) -> list[CapResult]:
        """Revert every cap whose lease has ended. The control API calls this every second."""
        now = self.clock()
        with self._lock:
            due = sorted(k for k, lease in self._leases.items() if lease.expires_at <= now)
            return [self._restore_one(k, "power_cap_expired", "dcops-agent", "lease expired without renewal")
                    for k in due]

    def _restore_one(self, k: int, action: str, who: str, why: str) -> CapResult:
        lease = self._leases.get(k)
        try:
            b, i = self._dev(k)
        except PowerControlError as exc:
            return CapResult(k, "", False, error=str(exc))
        dev = b.device_id(i)
        if lease is None:
            return CapResult(k, dev, True, error="not capped by dcops")
        try:
            before = b.get_limit(i)
            b.set_limit(i, lease.original_w)
            after = b.get_limit(i)
        except PowerControlError as exc:  # keep the lease: the next expire() tries again
            self._audit_raw({"action": action + "_failed", "host": self.host, "accel": k, "device": dev,
                             "requested_by": who, "reason": why, "error": str(exc)})
            return CapResult(k, dev, False, error=str(exc))
        del self._leases[k]
        self._audit_raw({"action": action, "host": self.host, "accel": k, "device": dev, "requested_by": who,
                         "reason": why, "incident": lease.incident, "before_w": before, "after_w": after})
        return CapResult(k, dev, True, applied_w=after, previous_w=before)

    # ----- audit ------------------------------------------------------------------------
    def _audit(self, action: str, k: int, dev: str, req: CapRequest, **extra) -> None:
        self._audit_raw({"action": action, "host": self.host, "accel": k, "device": dev,
                         "requested_by": req.requested_by, "reason": req.reason, "incident": req.incident,
                         "step": req.step, "ttl_s": req.ttl_s, **extra})

    def _audit_raw(self, record: dict) -> None:
        record = {"time": self.clock(), **record}
        log.info("power control: %s", record)
        try:
            self.audit(record)
        except Exception:  # the audit sink failing must be loud, not silent
            log.exception("power control: could not write the audit record %s", record)
            raise


NPU_NO_POWER_LIMIT = ("Rebellions NPUs: rbln-stat reads power but offers no power-limit control; cap NPU load "
                      "through the serving framework (batch size, replicas) or the server's BMC instead")


def controller_for(agent, audit: Callable[[dict], None] = lambda record: None,
                   clock: Callable[[], float] = time.time) -> PowerController:
    """The power controller of a `HostAgent`: GPUs through its NVML module, NPUs listed as
    not cappable (with the reason), accelerator indices in the order GPUs then NPUs."""
    backends: list = []
    if agent.nvml is not None:
        backends.append(NvmlPowerBackend(agent.nvml.nvml, [g.uuid for g in agent.nvml.identities]))
    if agent.npu is not None:
        ids = [d.uuid for d in getattr(agent.npu, "devices", ())]
        backends.append(UnsupportedPowerBackend(agent.npu.adapter.vendor, ids, NPU_NO_POWER_LIMIT))
    return PowerController(agent.host, backends, audit=audit, clock=clock)
