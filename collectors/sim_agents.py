"""The accelerator agents run against the simulator: one agent per simulated server.

GPU servers get an `NvmlAgent` over an `NvmlStandin` whose backend reads the simulator's
true accelerator state (`sim.accel_values()`) and whose event set delivers the simulator's
XIDs; NPU servers get an `NpuAgent` over a stand-in `rbln-stat -j` that writes the real
tool's JSON from the same state. The agents' code is exactly what runs on a real host.
Each server's inference server is a stand-in vLLM `/metrics` (`vllm_standin.SimVllm`), read
by the agent's `ServingReader` as `dcops agent --serving-url` reads the real one.

    agents = SimAgents(sim, bus)       # after each sim.step():
    agents.collect()                   # one poll of every host, published to the bus

or, as a thread of its own: `run_sim_agents(sim, bus, stop_event, interval_s, lock=lock)`.

A server whose accelerators all report `accel_up == 0` is dark (powered off): its agent is
not running, so it publishes nothing that round. Each published batch is keyed by rack.
"""

from __future__ import annotations

import logging
import math
import threading
import uuid as _uuid
from collections import defaultdict

from dcops.batch import Batch, Event
from dcops.bus import Bus, publish_batch, publish_events
from dcops.collectors.npu_agent import NpuAgent, load_npu_adapters
from dcops.collectors.nvml_agent import NvmlAgent
from dcops.collectors.nvml_standin import NvmlStandin
from dcops.collectors.prom_scrape import load_prom_map
from dcops.collectors.serving_reader import ServingReader
from dcops.collectors.vllm_standin import SimVllm
from dcops.collectors.xid_events import XidWatcher, load_xid_catalogue

__all__ = ["AGENT_EVENT_KINDS", "SimAgents", "SimBackend", "SimView", "agent_covers", "rbln_document",
           "run_sim_agents"]

log = logging.getLogger(__name__)

# Event kinds the agents produce about accelerators; a demo that runs them should not also
# publish the simulator's own events of these kinds for accelerators.
AGENT_EVENT_KINDS = frozenset({"xid", "accel_lost", "accel_recovered"})


def agent_covers(event: Event) -> bool:
    """True for a simulator event the agents report themselves (an accelerator's XID, lost or
    recovered): a demo running the agents drops these from the simulator's own event stream.
    Server-level events (a host losing power) stay with the simulator: a dark host's agent is silent."""
    return event.kind in AGENT_EVENT_KINDS and bool(event.target.get("accel"))


_NS = _uuid.UUID("6b1d3c1e-58a4-4d0b-9a57-0cf1d2a5e7b1")
_GTS = {1: "2.5GT/s", 2: "5.0GT/s", 3: "8.0GT/s", 4: "16.0GT/s", 5: "32.0GT/s", 6: "64.0GT/s"}


class SimView:
    """The simulator's accelerator state for the current step, as lists, plus its new XIDs."""

    def __init__(self, sim) -> None:
        self.sim = sim
        self.inventory = sim.inventory
        self.cols: dict[str, list[float]] = {}
        self.now_ns: int | None = None
        self._cursor = sim.events_since(0)[1]
        self.xids: dict[str, list[tuple[int, int]]] = defaultdict(list)  # server -> [(index, xid)]
        self.npu_ids: dict[int, tuple[str, str]] = {}  # accelerator -> (sid, uuid) for rbln_document

    def refresh(self) -> bool:
        """Read the current step once (cheap when nothing changed); True when it was new."""
        if self.sim.now_ns == self.now_ns:
            return False
        self.cols = {k: v.tolist() for k, v in self.sim.accel_values().items()}
        self.now_ns = self.sim.now_ns
        events, self._cursor = self.sim.events_since(self._cursor)
        for e in events:
            if e.kind == "xid" and "accel" in e.attributes:
                server, _, idx = str(e.attributes["accel"]).rpartition(":")
                self.xids[server].append((int(idx), int(e.attributes["xid"])))
        return True

    def value(self, k: int, metric: str) -> float:
        col = self.cols.get(metric)
        return col[k] if col is not None else math.nan


class _SimGpu:
    """Duck-types `FakeGpu` for the stand-in, reading the simulator through the view."""

    lose_after_calls = None
    mig_mode = 0
    retired_pages = ((), ())
    vbios = "96.00.89.00.01"

    def __init__(self, view: SimView, k: int, aid: str, index: int, model: str) -> None:
        self.view, self.k = view, k
        self.uuid = f"GPU-{_uuid.uuid5(_NS, view.inventory.site + '/' + aid)}"
        self.serial = str(1650923000000 + (_uuid.uuid5(_NS, aid).int % 10**9))
        self.pci_bus_id = f"00000000:{0x18 + 0x11 * index:02X}:00.0"
        self.name = f"NVIDIA {model}"
        self.unsupported = {"nvmlDeviceGetRetiredPages"}  # Ampere and newer remap rows instead

    @property
    def lost(self) -> bool:
        col = self.view.cols.get("accel_up")
        return col is None or col[self.k] != 1.0

    set_error = None

    def value(self, metric: str) -> float:
        if metric == "accel_power_limit_w":  # a limit just set is read back at once, as on a real GPU
            return float(self.view.sim.power_limit[self.k])
        col = self.view.cols.get(metric)  # SimView.value, inlined: the stand-in asks ~40 times per GPU and poll
        return col[self.k] if col is not None else math.nan

    def limits(self) -> tuple[float, float, float]:
        tdp = float(self.view.sim.a_tdp[self.k])
        return 0.2 * tdp, tdp, tdp

    def set_power_limit(self, watts: float) -> None:
        self.view.sim.power_limit[self.k] = watts


class SimBackend:
    """The GPUs of one simulated server, for `NvmlStandin`."""

    driver_version = "550.90.07"
    init_error = None

    def __init__(self, view: SimView, server: str) -> None:
        self.view, self.server = view, server
        inv = view.inventory
        ids = [a for a in inv.accel_ids if a.rpartition(":")[0] == server]
        self._gpus = [_SimGpu(view, inv.accel_index[a], a, int(a.rpartition(":")[2]),
                              str(inv.accel_tags["model"][inv.accel_index[a]])) for a in ids]
        self._ids = ids

    def gpus(self):
        return self._gpus

    def take_xids(self) -> list[tuple[int, int]]:
        return self.view.xids.pop(self.server, [])

    def dark(self) -> bool:
        return all(g.lost for g in self._gpus)

    def cut_off(self) -> bool:
        """The host's agent is dead or its network is down (`sim.silent`): nothing arrives."""
        silent = self.view.sim.silent
        return bool(silent) and any(a in silent for a in self._ids)


def _npu_ids(inv, server: str, k: int) -> tuple[str, str]:
    """(sid, uuid) of one simulated NPU: fixed for the site, so worked out once."""
    aid = str(inv.accel_ids[k])
    card = int(inv.accel_card[k])
    return (f"{_uuid.uuid5(_NS, f'{server}/card{card}').int % 16**16:016X}",
            str(_uuid.uuid5(_NS, inv.site + "/" + aid)).upper())


def rbln_document(view: SimView, server: str, ks: list[int]) -> dict:
    """What `rbln-stat -j` would print on this simulated NPU server (current version)."""
    inv = view.inventory
    ids = view.npu_ids
    card_power: dict[int, float] = defaultdict(float)
    for k in ks:
        p = view.value(k, "accel_power_w")
        card_power[int(inv.accel_card[k])] += 0.0 if p != p else p
    devices = []
    for k in ks:
        aid = str(inv.accel_ids[k])
        idx = int(aid.rpartition(":")[2])
        v = lambda m: view.value(k, m)  # noqa: E731
        card = int(inv.accel_card[k])
        up = v("accel_up") == 1.0
        if k not in ids:
            ids[k] = _npu_ids(inv, server, k)
        sid, uuid = ids[k]
        dev = {"npu": idx, "name": str(inv.accel_tags["model"][k]), "sid": sid, "uuid": uuid, "device": f"rbln{idx}",
               "status": "normal" if up else "error", "fw_ver": "1.3.73"}
        if up:
            dev.update({
                "pci": {"dev": f"rbln{idx}", "bus_id": f"0000:{0x3b + 0x11 * idx:02x}:00.0", "numa_node": str(idx // 4),
                        "link_speed": _GTS.get(int(v("accel_pcie_link_gen")), "16.0GT/s"),
                        "link_width": str(int(v("accel_pcie_link_width")))},
                "temperature": f"{round(v('accel_temp_degc'))}C",
                "card_power": f"{int(card_power[card] * 1e6)}uW",
                "pstate": f"P{int(v('accel_pstate'))}",
                "memory": {"used": str(int(v("accel_mem_used_bytes"))), "total": str(int(v("accel_mem_total_bytes")))},
                "util": f"{v('accel_util_pct'):.1f}",
            })
        devices.append(dev)
    return {"KMD_version": "1.3.73", "devices": devices, "contexts": []}


class SimAgents:
    """Every simulated server's agent; `collect()` polls them all once and publishes."""

    def __init__(self, sim, bus: Bus | None = None, servers=None) -> None:
        self.sim = sim
        self.bus = bus
        self.view = SimView(sim)
        self.view.refresh()
        inv = sim.inventory
        clock = lambda: int(sim.now_ns)  # noqa: E731
        xids = load_xid_catalogue()
        rbln = load_npu_adapters()["rbln-stat"]
        wanted = None if servers is None else set(servers)
        self.gpu_hosts: list[tuple[NvmlAgent, XidWatcher, SimBackend, str]] = []
        self.npu_hosts: list[tuple[NpuAgent, list[int], str]] = []
        by_server: dict[str, list[int]] = defaultdict(list)
        for k, aid in enumerate(inv.accel_ids):
            by_server[str(aid).rpartition(":")[0]].append(k)
        for srv in inv.servers:
            ks = by_server.get(srv.name)
            if not ks or (wanted is not None and srv.name not in wanted):
                continue
            vendor = str(inv.accel_tags["vendor"][ks[0]])
            if vendor == "nvidia":
                backend = SimBackend(self.view, srv.name)
                agent = NvmlAgent(NvmlStandin(backend), srv.name, inventory=inv, clock=clock, source="nvml")
                agent.start()
                watcher = XidWatcher(agent.nvml, agent.handles, agent.targets, lambda ev: None,
                                     catalogue=xids, clock=clock, source="nvml", timeout_ms=0)
                watcher.register()
                self.gpu_hosts.append((agent, watcher, backend, srv.rack))
            else:
                doc = lambda name=srv.name, ks=ks: rbln_document(self.view, name, ks)  # noqa: E731
                self.npu_hosts.append((NpuAgent(doc, rbln, srv.name, inventory=inv, clock=clock, source="rbln"),
                                       ks, srv.rack))
        # each host's inference server: a stand-in vLLM /metrics read by the agents' serving reader
        vllm, serving = SimVllm(self.view, by_server), load_prom_map().serving
        self.serving = {h: ServingReader(vllm.fetcher(h), serving, h, where=f"http://{h}:8000/metrics")
                        for h in [a.host for a, *_ in self.gpu_hosts] + [a.host for a, *_ in self.npu_hosts]}
        self.polls = 0
        self.values = 0

    def power_controllers(self, audit=lambda record: None, clock=None) -> dict:
        """server -> `PowerController` over the same stand-ins the agents poll: the demo's and the
        tests' power caps go through the agent control API's code, backed by the simulator."""
        import time

        from dcops.collectors.power_control import (NPU_NO_POWER_LIMIT, NvmlPowerBackend, PowerController,
                                                    UnsupportedPowerBackend)

        clock = clock or time.time
        out = {}
        for agent, _, _, _ in self.gpu_hosts:
            backend = NvmlPowerBackend(agent.nvml, [g.uuid for g in agent.identities])
            out[agent.host] = PowerController(agent.host, [backend], audit=audit, clock=clock)
        for agent, ks, _ in self.npu_hosts:
            ids = [str(self.sim.inventory.accel_ids[k]) for k in ks]
            backend = UnsupportedPowerBackend("rebellions", ids, NPU_NO_POWER_LIMIT)
            out[agent.host] = PowerController(agent.host, [backend], audit=audit, clock=clock)
        return out

    def poll(self) -> list[tuple[str, Batch, list[Event]]]:
        """Poll every running host once: [(rack, batch, events)]."""
        self.view.refresh()
        out = []
        for agent, watcher, backend, rack in self.gpu_hosts:
            if backend.dark() or backend.cut_off():
                backend.take_xids()
                continue
            xid_events = watcher.drain()
            agent.count_xids(xid_events)
            batch, events = agent.poll()
            batch = self.serving[agent.host].annotate([batch])[0]
            out.append((rack, batch, xid_events + events))
        for agent, ks, rack in self.npu_hosts:
            if all(self.view.value(k, "accel_up") != 1.0 for k in ks):
                continue
            silent = self.sim.silent
            if silent and any(str(self.sim.inventory.accel_ids[k]) in silent for k in ks):
                continue  # agent dead or network down: nothing arrives
            batch, events = agent.poll()
            batch = self.serving[agent.host].annotate([batch])[0]
            out.append((rack, batch, events))
        self.polls += 1
        return out

    def collect(self) -> int:
        """Poll and publish (batch and events keyed by rack); returns the number of values."""
        n = 0
        for rack, batch, events in self.poll():
            if self.bus is not None:
                publish_batch(self.bus, batch, key=rack)
                publish_events(self.bus, events, key=rack)
            n += batch.n_values
        self.values += n
        return n


def run_sim_agents(sim, bus: Bus, stop_event: threading.Event, interval_s: float = 10.0, *,
                   lock: threading.Lock | None = None, servers=None) -> SimAgents:
    """Poll every simulated host each `interval_s` (wall clock) until `stop_event` is set.

    A round is skipped when the simulator has not stepped since the last one (no duplicate
    rows); pass the lock that guards `sim.step()` as `lock` when another thread steps it."""
    agents = SimAgents(sim, bus, servers=servers)
    last = None
    while True:
        try:
            if lock is not None:
                with lock:
                    if sim.now_ns != last:
                        last = sim.now_ns
                        agents.collect()
            elif sim.now_ns != last:
                last = sim.now_ns
                agents.collect()
        except Exception:  # one bad round must not stop the agents
            log.exception("simulated agents: poll failed")
        if stop_event.wait(interval_s):
            return agents
