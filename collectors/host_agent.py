"""One host's accelerator agent: whatever of NVML, an NPU tool and exporters the host has.

`discover()` tries each source and keeps those that work, with a note for each that does
not (no NVIDIA driver, no rbln-stat on PATH, ...): a GPU-less NPU host and an NPU-less GPU
host run the same agent. `HostAgent.poll()` returns one batch per source; `run()` publishes
them on the bus every interval (keyed by the host's rack) with the XID thread's events.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from dcops.batch import Batch, Event
from dcops.bus import Bus, publish_batch, publish_events
from dcops.topology import Inventory
from dcops.collectors.npu_agent import NpuAgent, NpuParseError, NpuToolError, load_npu_adapters, run_tool
from dcops.collectors.nvml_agent import NvmlAgent, NvmlUnavailable, load_pynvml
from dcops.collectors.prom_scrape import PromMapper, PromParseError, PromScraper, load_prom_map
from dcops.collectors.serving_reader import ServingReader
from dcops.collectors.xid_events import XidWatcher

__all__ = ["HostAgent", "discover"]

log = logging.getLogger(__name__)


@dataclass
class HostAgent:
    host: str
    inventory: Inventory | None = None
    nvml: NvmlAgent | None = None
    npu: NpuAgent | None = None
    prom: PromScraper | None = None
    serving: ServingReader | None = None  # the local inference server: tokens shared over the accelerators
    notes: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return self.nvml is None and self.npu is None and self.prom is None

    @property
    def rack(self) -> str:
        inv = self.inventory
        if inv is not None and self.host in inv.components:
            return inv.get(self.host).rack
        return self.host

    def identities(self) -> list[dict]:
        """Who is who: UUID, serial, PCI bus id, model, driver/VBIOS/firmware versions, MIG mode."""
        out = []
        if self.nvml is not None:
            for g in self.nvml.identities:
                out.append({"accelerator": g.uuid, "vendor": "nvidia", "model": g.model, "index": g.index,
                            "serial": g.serial, "pci_bus_id": g.pci_bus_id, "driver_version": g.driver_version,
                            "vbios_version": g.vbios_version,
                            "mig_mode": {0: "disabled", 1: "enabled"}.get(g.mig_mode, "not supported")})
        if self.npu is not None:
            for d in self.npu.devices:
                out.append({"accelerator": d.uuid, "vendor": self.npu.adapter.vendor, "model": d.model,
                            "index": d.index, "card": d.card, "status": d.status, **dict(d.identity)})
        return out

    def poll(self) -> tuple[list[Batch], list[Event], list[str]]:
        """One poll of every source: (batches, events, problems). A failing source costs itself only."""
        batches, events, problems = [], [], []
        for name, src in (("nvml", self.nvml), ("npu", self.npu), ("prom", self.prom)):
            if src is None:
                continue
            try:
                batch, evs = src.poll()
            except (NpuParseError, NpuToolError, PromParseError, NvmlUnavailable) as exc:
                problems.append(f"{name}: {exc}")
                continue
            if batch is not None and len(batch):
                batches.append((name, batch))
            events += evs
            problems += [f"{name}: {p}" for p in getattr(src, "problems", ()) or ()]
        own = [b for name, b in batches if name != "prom"]  # an exporter scrape carries its own serving counters
        if self.serving is not None and own:  # a failing endpoint is logged once by the reader
            own = self.serving.annotate(own)
        return own + [b for name, b in batches if name == "prom"], events, problems

    def run(self, bus: Bus, stop: threading.Event, interval_s: float) -> None:
        """Poll every `interval_s` and publish until `stop` is set; XIDs arrive from their own thread."""
        key = self.rack
        watcher = None
        if self.nvml is not None:
            def emit(evs: list[Event]) -> None:
                self.nvml.count_xids(evs)
                publish_events(bus, evs, key=key)

            watcher = XidWatcher(self.nvml.nvml, self.nvml.handles, self.nvml.targets, emit,
                                 clock=self.nvml.clock)
            watcher.start(stop)
        logged: set[str] = set()
        while True:
            started = time.monotonic()
            batches, events, problems = self.poll()
            for b in batches:
                publish_batch(bus, b, key=key)
            publish_events(bus, events, key=key)
            for p in problems:
                if p not in logged:
                    logged.add(p)
                    log.warning("%s: %s", self.host, p)
            if stop.wait(max(0.0, interval_s - (time.monotonic() - started))):
                break
        if self.nvml is not None:
            self.nvml.close()


def discover(host: str, inventory: Inventory | None = None, *, nvml_module=None, use_nvml: bool = True,
             rbln_json: str | Path | None = None, rbln_command: Sequence[str] | None = None,
             prom_urls: Sequence[str] = (), serving_url: str | None = None,
             clock: Callable[[], int] = time.time_ns) -> HostAgent:
    """Build the host's agent from the sources that work here; `notes` say why others were left out."""
    agent = HostAgent(host, inventory)
    if use_nvml:
        try:
            nvml = NvmlAgent(nvml_module if nvml_module is not None else load_pynvml(), host,
                             inventory=inventory, clock=clock)
            if nvml.start():
                agent.nvml = nvml
            else:
                agent.notes.append("nvml: the driver answers but reports no GPU")
                nvml.close()
        except NvmlUnavailable as exc:
            agent.notes.append(f"nvml: {exc}")
    adapter = load_npu_adapters()["rbln-stat"]
    if rbln_json is not None:
        path = Path(rbln_json)
        agent.npu = NpuAgent(lambda: _read(path), adapter, host, inventory=inventory, clock=clock, source="rbln")
    else:
        cmd = tuple(rbln_command or adapter.command)
        if shutil.which(cmd[0]):
            agent.npu = NpuAgent(lambda: run_tool(cmd), adapter, host, inventory=inventory, clock=clock, source="rbln")
        else:
            agent.notes.append(f"npu: {cmd[0]} is not on PATH (no Rebellions NPU tool on this host)")
    if prom_urls:
        agent.prom = PromScraper(prom_urls, PromMapper(load_prom_map(), host, inventory), clock=clock)
    if serving_url:
        agent.serving = ServingReader.from_url(serving_url, load_prom_map().serving, host)
    return agent


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise NpuToolError(f"cannot read {path}: {exc.strerror or exc}") from None
