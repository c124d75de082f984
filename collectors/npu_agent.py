"""NPU telemetry from vendors' JSON status tools (Rebellions `rbln-stat -j`, and others as data).

An adapter (`collectors/data/npu_adapters.yaml`) says where a tool's device list is, which
keys identify a die and its card, and which key holds each catalogue metric in which unit.
`parse_document()` is pure: JSON text or a parsed document in, `NpuDevice`s and a list of
problems out. Problems name the device and key (`devices[2].card_power: '18109794' has no
unit; expected one of uW, mW, W`); a bad value costs that value, a device without an
identity costs that device, and output that is not the tool's JSON at all raises
`NpuParseError`.

Multi-die cards (ATOM Max) repeat the card's power on every die: metrics marked
`per_card` are kept on the card's first die only, so sums over dies count each card once.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import time
from dataclasses import dataclass, field
from collections.abc import Mapping
from pathlib import Path
from typing import Callable, Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dcops.batch import Batch, Event
from dcops.catalogue import METRICS
from dcops.topology import Inventory
from dcops.yamlconf import load_yaml
from dcops.collectors.accel_common import accel_targets, build_accel_batch, lost_event, recovered_event

__all__ = ["NPU_ADAPTERS_PATH", "NpuAdapter", "NpuAgent", "NpuDevice", "NpuParse", "NpuParseError",
           "NpuToolError", "UNITS", "load_npu_adapters", "parse_document", "run_tool"]

log = logging.getLogger(__name__)
NPU_ADAPTERS_PATH = Path(__file__).parent / "data" / "npu_adapters.yaml"
_NUM = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-z%/°]*)\s*$")
_GEN = {2.5: 1, 5.0: 2, 8.0: 3, 16.0: 4, 32.0: 5, 64.0: 6}


class NpuParseError(ValueError):
    """The tool's output cannot be read at all (not JSON, no device list)."""


class NpuToolError(RuntimeError):
    """The tool could not be run or failed."""


# ----- units ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Unit:
    suffixes: Mapping[str, float]  # suffix -> factor to the canonical unit ('' = bare number)
    special: Callable[[float], float] | None = None
    prefix: str = ""  # a leading marker the tool writes before the number ("P" of "P14")

    def convert(self, raw) -> float:
        if isinstance(raw, bool):
            raise ValueError(f"{raw!r} is not a number")
        if isinstance(raw, (int, float)):
            num, suffix = float(raw), ""
        elif isinstance(raw, str):
            m = _NUM.match(raw[len(self.prefix):] if self.prefix and raw.startswith(self.prefix) else raw)
            if not m:
                raise ValueError(f"{raw!r} is not a number with a unit")
            num, suffix = float(m.group(1)), m.group(2)
        else:
            raise ValueError(f"{raw!r} is not a number")
        if suffix not in self.suffixes:
            want = ", ".join(s for s in self.suffixes if s) or "none"
            what = f"unit {suffix!r}" if suffix else "no unit"
            raise ValueError(f"{raw!r} has {what}; expected one of {want}")
        value = num * self.suffixes[suffix]
        return self.special(value) if self.special else value


def _gen(gts: float) -> float:
    if gts not in _GEN:
        raise ValueError(f"{gts} GT/s is not a PCIe link speed")
    return float(_GEN[gts])


UNITS: dict[str, Unit] = {
    "degC": Unit({"C": 1.0, "°C": 1.0, "": 1.0}),
    "uW": Unit({"uW": 1e-6, "mW": 1e-3, "W": 1.0}),
    "mW": Unit({"uW": 1e-6, "mW": 1e-3, "W": 1.0, "": 1e-3}),
    "W": Unit({"uW": 1e-6, "mW": 1e-3, "W": 1.0, "": 1.0}),
    "bytes": Unit({"": 1.0, "B": 1.0, "KiB": 1024.0, "MiB": 2.0**20, "GiB": 2.0**30}),
    "pct": Unit({"": 1.0, "%": 1.0}),
    "pstate": Unit({"": 1.0}, prefix="P"),
    "pcie_gts": Unit({"GT/s": 1.0, "": 1.0}, special=_gen),
    "count": Unit({"": 1.0}),
}


# ----- adapters (validated data) -------------------------------------------------------------
class _Field(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    metric: str
    path: str = Field(min_length=1)
    unit: Literal[tuple(UNITS)]  # type: ignore[valid-type]
    per_card: bool = False

    @field_validator("metric")
    @classmethod
    def _catalogued(cls, v: str) -> str:
        if v not in METRICS or METRICS[v].measurement != "accel":
            raise ValueError(f"metric {v!r} is not an accel metric in the catalogue")
        return v


class NpuAdapter(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    vendor: str = Field(min_length=1)
    command: tuple[str, ...] = Field(min_length=1)
    devices: str = Field(min_length=1)
    index: str
    uuid: str
    model: str
    card: str | None = None
    status: str | None = None
    up_status: tuple[str, ...] = ()
    identity: dict[str, str] = Field(default_factory=dict)
    fields: tuple[_Field, ...] = Field(min_length=1)


class _AdapterFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    adapters: dict[str, NpuAdapter] = Field(min_length=1)


def load_npu_adapters(path: str | Path = NPU_ADAPTERS_PATH) -> dict[str, NpuAdapter]:
    return dict(load_yaml(path, _AdapterFile).adapters)


# ----- parsing -------------------------------------------------------------------------------
@dataclass(frozen=True)
class NpuDevice:
    index: int
    uuid: str
    model: str
    card: str
    up: bool
    status: str
    values: Mapping[str, float]
    identity: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class NpuParse:
    devices: tuple[NpuDevice, ...]
    problems: tuple[str, ...]


_MISSING = object()


def _get(obj, path: str, root):
    if path.startswith("^"):
        obj, path = root, path[1:]
    for part in path.split("."):
        if not isinstance(obj, Mapping) or part not in obj:
            return _MISSING
        obj = obj[part]
    return obj


def _index(raw) -> int:
    if isinstance(raw, bool):
        raise ValueError(f"{raw!r} is not a device index")
    if isinstance(raw, int):
        return raw
    m = re.search(r"(\d+)\s*$", str(raw))  # "0" in older rbln-stat, "rbln0" from some tools
    if not m:
        raise ValueError(f"{raw!r} is not a device index")
    return int(m.group(1))


def parse_document(doc, adapter: NpuAdapter, source: str = "rbln-stat") -> NpuParse:
    """Read one output of the tool (JSON text or parsed) into devices and problems."""
    if isinstance(doc, (str, bytes)):
        text = doc.decode(errors="replace") if isinstance(doc, bytes) else doc
        if not text.strip():
            raise NpuParseError(f"{source}: empty output (expected a JSON document)")
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise NpuParseError(f"{source}: not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
                                f" (truncated or partial output?)") from None
    if not isinstance(doc, Mapping):
        raise NpuParseError(f"{source}: expected a JSON object with {adapter.devices!r}, got {type(doc).__name__}")
    devs = _get(doc, adapter.devices, doc)
    if devs is _MISSING:
        raise NpuParseError(f"{source}: no {adapter.devices!r} in the output (keys: {sorted(doc)})")
    if not isinstance(devs, list):
        raise NpuParseError(f"{source}: {adapter.devices!r} is a {type(devs).__name__}, expected a list")
    problems: list[str] = []
    out: list[NpuDevice] = []
    seen_cards: set[str] = set()
    for k, d in enumerate(devs):
        where = f"{source}: {adapter.devices}[{k}]"
        if not isinstance(d, Mapping):
            problems.append(f"{where}: expected an object, got {type(d).__name__}; device skipped")
            continue
        ident = {}
        for key in ("index", "uuid", "model"):
            raw = _get(d, getattr(adapter, key), doc)
            if raw is _MISSING or raw in ("", None):
                ident[key] = _MISSING
                continue
            ident[key] = raw
        if ident["index"] is _MISSING or ident["uuid"] is _MISSING:
            miss = [getattr(adapter, k) for k in ("index", "uuid") if ident[k] is _MISSING]
            problems.append(f"{where}: missing {', '.join(repr(m) for m in miss)}; device skipped")
            continue
        try:
            index = _index(ident["index"])
        except ValueError as exc:
            problems.append(f"{where}.{adapter.index}: {exc}; device skipped")
            continue
        card = str(_get(d, adapter.card, doc)) if adapter.card and _get(d, adapter.card, doc) is not _MISSING else str(ident["uuid"])
        first_die = card not in seen_cards
        seen_cards.add(card)
        status = str(_get(d, adapter.status, doc)) if adapter.status and _get(d, adapter.status, doc) is not _MISSING else ""
        up = (status in adapter.up_status) if adapter.up_status else True
        values: dict[str, float] = {}
        for f in adapter.fields:
            if f.per_card and not first_die:
                continue
            raw = _get(d, f.path, doc)
            if raw is _MISSING:
                problems.append(f"{where}.{f.path}: missing ({f.metric} not reported)")
                continue
            try:
                values[f.metric] = UNITS[f.unit].convert(raw)
            except ValueError as exc:
                problems.append(f"{where}.{f.path}: {exc}")
        identity = {name: str(v) for name, p in adapter.identity.items() if (v := _get(d, p, doc)) is not _MISSING}
        model = str(ident["model"]) if ident["model"] is not _MISSING else ""
        out.append(NpuDevice(index, str(ident["uuid"]), model, card, up, status, values, identity))
    return NpuParse(tuple(out), tuple(problems))


def run_tool(command: Sequence[str], timeout_s: float = 10.0) -> str:
    """Run the vendor tool and return its stdout; failures raise NpuToolError naming the command."""
    cmd = " ".join(command)
    try:
        done = subprocess.run(list(command), capture_output=True, text=True, timeout=timeout_s, check=False)
    except FileNotFoundError:
        raise NpuToolError(f"{command[0]} not found: is the NPU driver/tool installed and on PATH?") from None
    except subprocess.TimeoutExpired:
        raise NpuToolError(f"{cmd} did not answer within {timeout_s:g}s") from None
    if done.returncode != 0:
        raise NpuToolError(f"{cmd} exited with {done.returncode}: {done.stderr.strip()[:300]}")
    return done.stdout


# ----- the agent -----------------------------------------------------------------------------
class NpuAgent:
    """Polls one host's NPUs through a JSON tool. `read` returns the tool's output."""

    def __init__(self, read: Callable[[], object], adapter: NpuAdapter, host: str,
                 inventory: Inventory | None = None, clock: Callable[[], int] = time.time_ns,
                 source: str = "rbln") -> None:
        self.read = read
        self.adapter = adapter
        self.host = host
        self.inventory = inventory
        self.clock = clock
        self.source = source
        self.columns = ("accel_up",) + tuple(dict.fromkeys(f.metric for f in adapter.fields))
        self.problems: tuple[str, ...] = ()
        self.devices: tuple[NpuDevice, ...] = ()  # the last poll's devices, with their identity
        self._known: dict[str, dict[str, str]] = {}  # uuid -> target, every device seen so far
        self._down: set[str] = set()
        self._logged: set[str] = set()

    def poll(self) -> tuple[Batch, list[Event]]:
        now = self.clock()
        parsed = parse_document(self.read(), self.adapter, " ".join(self.adapter.command[:1]))
        self.problems = parsed.problems
        self.devices = parsed.devices
        for p in parsed.problems:
            if p not in self._logged:
                self._logged.add(p)
                log.warning("%s: %s", self.host, p)
        devs = sorted(parsed.devices, key=lambda d: d.index)
        targets = accel_targets(self.host, [d.index for d in devs], [self.adapter.vendor] * len(devs),
                                [d.model for d in devs], [d.uuid for d in devs], self.inventory)
        col = {m: j for j, m in enumerate(self.columns)}
        rows, events = [], []
        present = set()
        for d, t in zip(devs, targets):
            present.add(d.uuid)
            self._known[d.uuid] = t
            row = [float("nan")] * len(self.columns)
            row[0] = 1.0 if d.up else 0.0
            for m, v in d.values.items():
                row[col[m]] = v
            rows.append(row)
            events += self._transition(now, d.uuid, t, d.up, f"status {d.status!r}")
        for uuid, t in self._known.items():  # a die that vanished from the output is down
            if uuid not in present:
                row = [float("nan")] * len(self.columns)
                row[0] = 0.0
                rows.append(row)
                targets.append(t)
                events += self._transition(now, uuid, t, False, "missing from the tool's output")
        return build_accel_batch(now, targets, self.columns, rows), events

    def _transition(self, now: int, uuid: str, target, up: bool, detail: str) -> list[Event]:
        if not up and uuid not in self._down:
            self._down.add(uuid)
            return [lost_event(now, target, self.source, detail)]
        if up and uuid in self._down:
            self._down.discard(uuid)
            return [recovered_event(now, target, self.source)]
        return []
