"""NVIDIA XID errors: the catalogue (as data) and the thread that waits for them.

`load_xid_catalogue()` reads `collectors/data/xid.yaml`: for each XID its meaning, whether
the fault lies with the application or the hardware (or driver, or power), and the first rung
of NVIDIA's action ladder (ignore < restart_app < reset_gpu < reboot_node < contact_support).

`XidWatcher` registers every GPU for `nvmlEventTypeXidCriticalError` and loops on
`nvmlEventSetWait_v2` in a thread of its own; each XID becomes an `xid` `Event` carrying the
catalogue's advice. The NVML module is injected (real `pynvml` or the stand-in), so the
thread's code is the same on a real host and in tests.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal, Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field

from dcops.batch import Event, Severity
from dcops.yamlconf import parse_yaml, read_config_text, validate_with_lines

__all__ = [
    "ACTION_LADDER", "XID_CATALOGUE_PATH", "XidCatalogue", "XidInfo", "XidWatcher",
    "load_xid_catalogue", "xid_event",
]

log = logging.getLogger(__name__)

XID_CATALOGUE_PATH = Path(__file__).parent / "data" / "xid.yaml"
ACTION_LADDER = ("ignore", "restart_app", "reset_gpu", "reboot_node", "contact_support")
Action = Literal["ignore", "restart_app", "reset_gpu", "reboot_node", "contact_support"]
Cause = Literal["application", "hardware", "driver", "secondary", "power"]
_SEVERITY = Literal["critical", "major", "minor", "warning", "info"]


class _XidEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1)
    cause: Cause
    action: Action
    escalate: Action | None = None
    severity: _SEVERITY
    meaning: str = Field(min_length=1)
    check: str = ""


class _XidFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    xids: dict[int, _XidEntry] = Field(min_length=1)


@dataclass(frozen=True)
class XidInfo:
    xid: int
    name: str
    cause: str
    action: str
    escalate: str | None
    severity: str
    meaning: str
    check: str = ""

    @property
    def application_fault(self) -> bool:
        return self.cause == "application"

    @property
    def ladder(self) -> tuple[str, ...]:
        """The rungs of NVIDIA's ladder from this XID's first action up to its escalation."""
        lo = ACTION_LADDER.index(self.action)
        hi = ACTION_LADDER.index(self.escalate) if self.escalate else lo
        return ACTION_LADDER[lo:max(lo, hi) + 1]


def _unknown(xid: int) -> XidInfo:
    return XidInfo(xid, f"XID {xid} (not in the catalogue)", "hardware", "contact_support", None,
                   Severity.MAJOR, f"XID {xid} is not in dcops' XID catalogue; look it up in NVIDIA's Xid Catalog.")


class XidCatalogue:
    """XID number -> XidInfo; unknown XIDs get a conservative 'contact support' entry."""

    def __init__(self, entries: Mapping[int, XidInfo]) -> None:
        self._entries = dict(entries)

    def __contains__(self, xid: int) -> bool:
        return xid in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self):
        return iter(sorted(self._entries))

    def lookup(self, xid: int) -> XidInfo:
        return self._entries.get(int(xid)) or _unknown(int(xid))


def load_xid_catalogue(path: str | Path = XID_CATALOGUE_PATH) -> XidCatalogue:
    """Read and validate the XID catalogue; errors name file, line and field."""
    p = Path(path)
    text = read_config_text(p)
    data, lines = parse_yaml(text, str(p))
    # XID numbers are integer keys; the line index records keys as text: index both.
    lines.update({tuple(int(k) if isinstance(k, str) and k.isdigit() else k for k in loc): ln
                  for loc, ln in list(lines.items())})
    model = validate_with_lines(_XidFile, data, lines, str(p))
    return XidCatalogue({
        n: XidInfo(n, e.name, e.cause, e.action, e.escalate, e.severity, e.meaning, e.check)
        for n, e in model.xids.items()
    })


def xid_event(info: XidInfo, time_ns: int, target: Mapping[str, str], source: str,
              uuid: str = "", detail: str = "") -> Event:
    """An `xid` event with the catalogue's meaning, fault side and action ladder."""
    who = target.get("device", "") + (f":{target['accel']}" if target.get("accel") else "")
    msg = f"XID {info.xid} on {who or uuid}: {info.name}; action: {info.action.replace('_', ' ')}"
    return Event(time_ns, "xid", source, target, info.severity, msg, {
        "xid": info.xid, "name": info.name, "meaning": info.meaning, "cause": info.cause,
        "application_fault": info.application_fault, "action": info.action,
        "ladder": list(info.ladder), "check": info.check, "uuid": uuid, "detail": detail,
    })


@dataclass(frozen=True)
class WatchedGpu:
    uuid: str
    target: Mapping[str, str]


class XidWatcher:
    """Waits for XID events on every GPU of a host and hands them to `emit` as `Event`s.

    `targets` are the topology tags (with `uuid`) of the GPUs behind `handles`, in the same
    order. An event is matched to its GPU by its device handle (the pointer value for real
    pynvml handles), so an XID 79 from a GPU that no longer answers is still attributed.
    NVML errors never end the thread: a timeout is the normal idle case, anything else is
    logged once per error code and retried after `retry_s`.
    """

    def __init__(self, nvml, handles: Sequence, targets: Sequence[Mapping[str, str]],
                 emit: Callable[[list[Event]], None], catalogue: XidCatalogue | None = None,
                 clock: Callable[[], int] = time.time_ns, source: str = "nvml",
                 timeout_ms: int = 500, retry_s: float = 5.0) -> None:
        self.nvml = nvml
        self.handles = list(handles)
        self.targets = list(targets)  # the agent's dicts: re-identified GPUs show up here too
        self._by_handle = {_handle_key(h): t for h, t in zip(self.handles, self.targets)}
        self._by_uuid = {t.get("uuid", ""): t for t in self.targets}
        self.emit = emit
        self.catalogue = catalogue or load_xid_catalogue()
        self.clock = clock
        self.source = source
        self.timeout_ms = timeout_ms
        self.retry_s = retry_s
        self.seen = 0
        self._set = None
        self._logged: set[int] = set()
        self._thread: threading.Thread | None = None

    def register(self) -> int:
        """Create the event set and register each GPU; returns how many GPUs were registered."""
        n = self.nvml
        self._set = n.nvmlEventSetCreate()
        registered = 0
        for h in self.handles:
            try:
                n.nvmlDeviceRegisterEvents(h, n.nvmlEventTypeXidCriticalError, self._set)
                registered += 1
            except n.NVMLError as exc:
                log.warning("XID events not available on a GPU (%s); its XIDs will be missed", exc)
        return registered

    def _wait(self, timeout_ms: int):
        """One nvmlEventSetWait_v2: the event data, or None on timeout. Other errors raise."""
        n = self.nvml
        if self._set is None:
            self.register()
        try:
            return n.nvmlEventSetWait_v2(self._set, timeout_ms)
        except n.NVMLError as exc:
            if exc.value == n.NVML_ERROR_TIMEOUT:
                return None
            if exc.value not in self._logged:
                self._logged.add(exc.value)
                log.warning("nvmlEventSetWait_v2 failed: %s (NVML error %s); retrying", exc, exc.value)
            raise

    def _events(self, data) -> list[Event]:
        n = self.nvml
        if not data.eventType & n.nvmlEventTypeXidCriticalError:
            return []
        target = self._by_handle.get(_handle_key(data.device))
        if target is None:  # a handle we did not hand out: ask NVML which GPU it is
            try:
                target = self._by_uuid.get(_text(n.nvmlDeviceGetUUID(data.device)))
            except n.NVMLError:
                target = None
        target = target or {"device": "", "accel": "", "uuid": ""}
        uuid = target.get("uuid", "")
        target = {k: v for k, v in target.items() if k != "uuid"}
        self.seen += 1
        info = self.catalogue.lookup(int(data.eventData))
        return [xid_event(info, self.clock(), target, self.source, uuid)]

    def wait_once(self, timeout_ms: int | None = None) -> list[Event]:
        """Wait for one NVML event; returns the XID events it produced (none on timeout)."""
        data = self._wait(self.timeout_ms if timeout_ms is None else timeout_ms)
        return [] if data is None else self._events(data)

    def drain(self, max_events: int = 1000) -> list[Event]:
        """Take every event already waiting, without blocking (for a poll loop without a thread)."""
        out: list[Event] = []
        for _ in range(max_events):
            try:
                data = self._wait(0)
            except self.nvml.NVMLError:
                break
            if data is None:
                break
            out += self._events(data)
        return out

    def run(self, stop: threading.Event) -> None:
        """Loop until `stop` is set; never raises for NVML errors."""
        n = self.nvml
        while not stop.is_set():
            try:
                events = self.wait_once()
            except n.NVMLError:
                stop.wait(self.retry_s)
                continue
            if events:
                self.emit(events)
        if self._set is not None:
            try:
                n.nvmlEventSetFree(self._set)
            except n.NVMLError:
                pass
            self._set = None

    def start(self, stop: threading.Event) -> threading.Thread:
        self._thread = threading.Thread(target=self.run, args=(stop,), name="xid-watcher", daemon=True)
        self._thread.start()
        return self._thread


def _handle_key(h):
    """A hashable identity for an NVML device handle: the pointer value of a ctypes handle."""
    try:
        return ctypes.cast(h, ctypes.c_void_p).value
    except (TypeError, ctypes.ArgumentError):
        return h


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)
