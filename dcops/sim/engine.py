"""The simulator: a site whose physics close the loop, stepped one sample interval at a time.

Inference load drives accelerator power; power becomes heat in the racks; the cooling zone's
running capacity and airflow, and the neighbouring racks' exhaust, set each rack's inlet
temperature; die temperature follows inlet plus thermal resistance times power; hot dies
throttle, which lowers power; power caps hold. Power flows UPS > PDU > rack feed > server PSU,
so a tripped breaker, a UPS that drops its output or an empty battery takes exactly what it
feeds. Racks in a zone cooled only by CDUs are liquid-cooled: their accelerators follow the
coolant supply temperature, which rises when the CDUs lose flow. All state is numpy
arrays indexed like the inventory, so a step of the 4,096-accelerator demo site costs about a
millisecond. Deterministic for a seed.
"""

from __future__ import annotations

import itertools
import time
from collections import deque

import numpy as np

from dcops.batch import Batch, Event, Severity
from dcops.sim.controls import FaultControls
from dcops.sim.faults import FAULT_TYPES, FaultLabel
from dcops.sim.model import SERVING, accel_model, ups_runtime_s
from dcops.sim.output import build_batches
from dcops.sim.sensors import SensorModel
from dcops.site import SiteConfig
from dcops.topology import Inventory, build_inventory

__all__ = ["Simulator"]

NS = 1_000_000_000
DAY_S = 86400.0


class Simulator(FaultControls):
    def __init__(self, site: SiteConfig | Inventory, seed: int = 0, start_ns: int | None = None,
                 interval_s: float = 10.0, max_events: int = 100_000) -> None:
        self.inventory = site if isinstance(site, Inventory) else build_inventory(site)
        inv = self.inventory
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.interval_s = float(interval_s)
        if start_ns is None:
            start_ns = (int(time.time()) // int(interval_s)) * int(interval_s) * NS
        self.now_ns = int(start_ns)
        self.labels: list[FaultLabel] = []
        self._active: dict[str, FaultLabel] = {}
        self._ids = itertools.count(1)
        self._events: deque[Event] = deque()
        self._events_base = 0
        self._max_events = max_events
        self._stuck: dict[tuple[str, str], float | None] = {}  # (component, metric) -> frozen value
        self._clog: dict[int, FaultLabel] = {}  # cooling unit index -> its clogged-filter fault
        self._cuts: dict[str, frozenset[str]] = {}  # fault id -> components whose telemetry it cuts
        self._silent: frozenset[str] = frozenset()
        self._index(inv)
        self.sensors = SensorModel(seed, len(inv.accel_ids), len(self.server_names), len(self.rack_names),
                                   len(inv.of_kind("env")), len(self.unit_names), len(self.pdu_names), len(self.ups_names))
        self._init_state()

    # ----- structure ------------------------------------------------------------------------
    def _index(self, inv: Inventory) -> None:
        self.server_names = [s.name for s in inv.servers]
        self.rack_names = [r.name for r in inv.racks]
        self.pdu_names = [c.name for c in inv.of_kind("pdu")]
        self.ups_names = [c.name for c in inv.of_kind("ups")]
        self.unit_names = [c.name for c in inv.of_kind("cooling")]
        self.zone_names = [c.name for c in inv.of_kind("zone")]
        si = {n: i for i, n in enumerate(self.server_names)}
        ri = {n: i for i, n in enumerate(self.rack_names)}
        pi = {n: i for i, n in enumerate(self.pdu_names)}
        ui = {n: i for i, n in enumerate(self.ups_names)}
        zi = {n: i for i, n in enumerate(self.zone_names)}
        self._si, self._ri, self._pi, self._ui_ups, self._zi = si, ri, pi, ui, zi
        self._ci = {n: i for i, n in enumerate(self.unit_names)}
        self.a_srv = np.array([si[d] for d in inv.accel_tags["device"]], dtype=np.int64)
        self.s_rack = np.array([ri[s.rack] for s in inv.servers], dtype=np.int64)
        self.s_idle = np.array([s.attrs["idle_w"] for s in inv.servers], dtype=np.float64)
        self.s_has = np.array([[f in s.attrs["psus"] for f in "AB"] for s in inv.servers], dtype=bool).reshape(-1, 2)
        self.s_slot = np.zeros(len(inv.servers))
        for r in range(len(self.rack_names)):
            idx = np.flatnonzero(self.s_rack == r)
            self.s_slot[idx] = np.arange(len(idx))
        self.r_feed = np.full((len(self.rack_names), 2), -1, dtype=np.int64)
        for i, r in enumerate(inv.racks):
            for j, f in enumerate("AB"):
                if f in r.attrs["feeds"]:
                    self.r_feed[i, j] = pi[r.attrs["feeds"][f]]
        self.r_zone = np.array([zi.get(r.attrs["zone"], -1) for r in inv.racks], dtype=np.int64)
        row_names = sorted({r.row for r in inv.racks})
        self.r_row = np.array([row_names.index(r.row) for r in inv.racks], dtype=np.int64)
        self.r_pos = np.array([r.attrs["position"] for r in inv.racks], dtype=np.int64)
        self.p_ups = np.array([ui[inv.get(p).attrs["ups"]] for p in self.pdu_names], dtype=np.int64)
        self.p_cap = np.array([inv.get(p).attrs["capacity_w"] for p in self.pdu_names])
        self.u_cap = np.array([inv.get(u).attrs["capacity_w"] for u in self.ups_names])
        self.u_runtime = np.array([inv.get(u).attrs["runtime_s"] for u in self.ups_names])
        self.c_cap = np.array([inv.get(c).attrs["capacity_w"] for c in self.unit_names])
        self.c_setpoint = np.array([inv.get(c).attrs["setpoint"] for c in self.unit_names])
        self.c_zone = np.full(len(self.unit_names), -1, dtype=np.int64)
        for z, zname in enumerate(self.zone_names):
            for u in inv.get(zname).attrs["units"]:
                self.c_zone[self._ci[u]] = z
        self.c_cdu = np.array([inv.get(c).attrs["unit_kind"] == "cdu" for c in self.unit_names], dtype=bool)
        # a zone cooled by CDUs only is a liquid loop; its racks' accelerators sit on cold plates
        nz = len(self.zone_names)
        n_units = np.bincount(self.c_zone[self.c_zone >= 0], minlength=nz)
        n_cdu = np.bincount(self.c_zone[(self.c_zone >= 0) & self.c_cdu], minlength=nz)
        self.z_liquid = (n_units > 0) & (n_units == n_cdu)
        self.z_setpoint = np.bincount(self.c_zone[self.c_zone >= 0], weights=self.c_setpoint[self.c_zone >= 0],
                                      minlength=nz) / np.maximum(n_units, 1)
        self.r_liquid = np.where(self.r_zone >= 0, self.z_liquid[np.maximum(self.r_zone, 0)] if nz else False, False)
        air = ~self.c_cdu
        self.air_setpoint = float(self.c_setpoint[air].mean()) if air.any() else 18.0
        # neighbours: racks adjacent in the same row
        order = np.lexsort((self.r_pos, self.r_row))
        self.r_left = np.full(len(self.rack_names), -1)
        self.r_right = np.full(len(self.rack_names), -1)
        for a, b in zip(order[:-1], order[1:]):
            if self.r_row[a] == self.r_row[b]:
                self.r_right[a], self.r_left[b] = b, a
        tags = inv.accel_tags
        models = [accel_model(v, m) for v, m in zip(tags["vendor"], tags["model"])]
        self.a_nvidia = tags["vendor"] == "nvidia"
        self.a_tdp = inv.accel_tdp_w.copy()
        self.a_idle = np.array([m.idle_fraction for m in models]) * self.a_tdp
        self.a_rth = np.array([m.r_th for m in models])
        self.a_slow = np.array([m.slowdown_degc for m in models])
        self.a_memslow = np.array([m.mem_slowdown_degc for m in models])
        self.a_sm_max = np.array([m.sm_clock_mhz for m in models])
        self.a_mem_clk = np.array([m.mem_clock_mhz for m in models])
        self.a_tok = np.array([m.tokens_per_s for m in models])
        self.a_pcie = np.array([[m.pcie_gen, m.pcie_width] for m in models], dtype=np.float64).reshape(-1, 2)
        self.a_mem_total = inv.accel_memory_bytes.copy()

    def _init_state(self) -> None:
        n, ns, nr = len(self.inventory.accel_ids), len(self.server_names), len(self.rack_names)
        rng = self.rng
        self.job = rng.uniform(-0.1, 0.1, ns)  # per-server AR(1) load deviation
        self.load_offset = 0.0  # added to every accelerator's load share (what-if, tests)
        self.util = np.zeros(n)
        self.clk = np.ones(n)
        self.power = self.a_idle.copy()
        self.power_limit = self.a_tdp.copy()
        self.r_inlet = np.full(nr, 22.0)
        self.temp = self.r_inlet[self.s_rack[self.a_srv]] + self.a_rth * self.power
        self.mem_temp = self.temp + 6
        self.hbm_extra = np.zeros(n)
        self.rth_factor = np.ones(n)
        self.thermal = np.zeros(n, dtype=bool)
        self.power_capped = np.zeros(n, dtype=bool)
        self.lost = np.zeros(n, dtype=bool)
        self.energy = rng.uniform(1e9, 5e9, n)
        self.tokens = rng.uniform(1e9, 1e10, n).round()
        # the serving engine's request counters, consistent with the tokens (dcops.sim.model.ServingMix)
        self.requests = np.floor(self.tokens / SERVING.generation_tokens_per_request)
        self.prompt_tokens = np.round(self.tokens * SERVING.prompt_tokens_per_request
                                      / SERVING.generation_tokens_per_request)
        self.ecc_corr = rng.integers(0, 50, n).astype(np.float64)
        self.ecc_uncorr = np.zeros(n)
        self.ecc_vol_corr = np.zeros(n)
        self.ecc_vol_uncorr = np.zeros(n)
        self.remap_corr = rng.integers(0, 3, n).astype(np.float64)
        self.remap_uncorr = np.zeros(n)
        self.remap_pending = np.zeros(n)
        self.remap_failure = np.zeros(n)
        self.pcie_replay = rng.integers(0, 20, n).astype(np.float64)
        self.nvl_crc = rng.integers(0, 5, n).astype(np.float64)
        self.nvl_replay = np.zeros(n)
        self.nvl_recovery = np.zeros(n)
        self.xid_total = np.zeros(n)
        self.s_fan_ok = np.ones(ns, dtype=bool)
        self.s_psu_ok = np.ones((ns, 2), dtype=bool)
        self.s_up = np.ones(ns, dtype=bool)
        self.s_power = np.zeros(ns)
        self.s_psu_w = np.zeros((ns, 2))
        self.s_inlet = np.full(ns, 22.0)
        self.r_power = np.zeros(nr)
        self.r_feed_w = np.zeros((nr, 2))
        self.p_closed = np.ones(len(self.pdu_names), dtype=bool)
        self.p_power = np.zeros(len(self.pdu_names))
        self.p_energy = rng.uniform(1e6, 1e7, len(self.pdu_names))
        self.u_battery = np.zeros(len(self.ups_names), dtype=bool)
        self.u_charge = np.full(len(self.ups_names), 100.0)
        self.u_on_batt_s = np.zeros(len(self.ups_names))
        self.u_power = np.zeros(len(self.ups_names))
        self.u_output_ok = np.ones(len(self.ups_names), dtype=bool)
        self.c_pump_ok = np.ones(len(self.unit_names), dtype=bool)
        self.c_leak = np.zeros(len(self.unit_names))  # coolant lost, % of the loop per second
        self.c_level = np.full(len(self.unit_names), 100.0)  # coolant level, % of full
        self.c_running = np.ones(len(self.unit_names), dtype=bool)
        self.c_filter = np.ones(len(self.unit_names))  # 1 clean .. 0.4 clogged
        self.c_load = np.zeros(len(self.unit_names))
        self.c_supply = self.c_setpoint.copy()
        self.z_excess = np.zeros(len(self.zone_names))
        self.z_ratio = np.zeros(len(self.zone_names))
        self._physics(settle=True)

    # ----- time -----------------------------------------------------------------------------
    def diurnal(self, t_ns: int) -> float:
        """Fleet load share over the day: low before dawn, peak mid-afternoon (UTC)."""
        h = (t_ns / NS % DAY_S) / 3600.0
        return 0.58 + 0.22 * np.sin(2 * np.pi * (h - 9.0) / 24.0)

    def step(self) -> None:
        self.now_ns += int(self.interval_s * NS)
        self._expire_faults()
        self._drift()
        self._physics()

    def run(self, n_steps: int) -> None:
        for _ in range(n_steps):
            self.step()

    # ----- physics --------------------------------------------------------------------------
    def _physics(self, settle: bool = False) -> None:
        dt = self.interval_s
        rng = self.rng
        n = len(self.util)
        # Load: diurnal share + per-server job mix (AR(1)) + per-accelerator jitter.
        self.job = 0.97 * self.job + rng.normal(0, 0.02, self.job.shape)
        target = self.diurnal(self.now_ns) + self.load_offset + self.job[self.a_srv] + rng.normal(0, 0.03, n)
        util = np.clip(target, 0.02, 1.0)

        # Power availability along the chain.
        ups_alive = self.ups_alive()
        pdu_live = self.p_closed & ups_alive[self.p_ups]
        feed_live = np.where(self.r_feed >= 0, pdu_live[np.maximum(self.r_feed, 0)], False)
        srv_feed = feed_live[self.s_rack] & self.s_has & self.s_psu_ok
        was_up = self.s_up.copy()
        self.s_up = srv_feed.any(axis=1)
        self._transitions(was_up)
        a_up = self.s_up[self.a_srv] & ~self.lost
        util = np.where(a_up, util, 0.0)

        # Throttling decided on the last step's temperatures (hysteresis 3 degC).
        # Clocks come down in proportion to the excess and back up once 3 degC below.
        excess = np.maximum(self.temp - self.a_slow, self.mem_temp - self.a_memslow)
        clk = np.where(excess > 0, self.clk - 0.04 * excess, np.where(excess < -3, self.clk + 0.05, self.clk))
        self.clk = np.where(a_up, np.clip(clk, 0.3, 1.0), 1.0)
        self.thermal = (self.clk < 0.999) & a_up
        want = self.a_idle + (self.a_tdp - self.a_idle) * util * self.clk
        self.power_capped = (want > self.power_limit) & a_up
        power = np.minimum(want, self.power_limit)
        self.power = np.where(a_up, power, 0.0)
        self.util = util * np.where(self.power_capped, self.power_limit / np.maximum(want, 1), 1.0)

        # Server, rack, feed, PDU and UPS power.
        s_acc = np.bincount(self.a_srv, weights=self.power, minlength=len(self.server_names))
        self.s_power = np.where(self.s_up, self.s_idle * (0.8 + 0.4 * self.util_by_server()) + s_acc, 0.0)
        share = srv_feed / np.maximum(srv_feed.sum(axis=1, keepdims=True), 1)
        self.s_psu_w = self.s_power[:, None] * share
        nr = len(self.rack_names)
        self.r_feed_w = np.stack([np.bincount(self.s_rack, weights=self.s_psu_w[:, j], minlength=nr) for j in range(2)], axis=1)
        self.r_power = self.r_feed_w.sum(axis=1)
        self.p_power = np.zeros(len(self.pdu_names))
        for j in range(2):
            ok = self.r_feed[:, j] >= 0
            self.p_power += np.bincount(self.r_feed[ok, j], weights=self.r_feed_w[ok, j], minlength=len(self.pdu_names))
        self.p_energy += self.p_power * dt / 3600.0
        self.u_power = np.bincount(self.p_ups, weights=self.p_power, minlength=len(self.ups_names)) / 0.96
        # On battery, a full battery lasts ups_runtime_s at this load: % of charge per second is
        # 100 / that (Peukert: more load drains disproportionately faster). Recharge: 1 h.
        full = ups_runtime_s(self.u_runtime, self.u_power / self.u_cap)
        drain = np.where(self.u_battery & ups_alive, dt / full * 100.0, np.where(self.u_battery, 0.0, -dt / 36.0))
        self.u_charge = np.clip(self.u_charge - drain, 0.0, 100.0)
        self.u_on_batt_s = np.where(self.u_battery, self.u_on_batt_s + dt, 0.0)

        # Cooling: zone heat vs running capacity; lost airflow and overload raise inlet temps.
        nz = len(self.zone_names)
        z_heat = np.bincount(self.r_zone[self.r_zone >= 0], weights=self.r_power[self.r_zone >= 0], minlength=nz)
        z_cap_nom = np.bincount(self.c_zone[self.c_zone >= 0], weights=self.c_cap[self.c_zone >= 0], minlength=nz)
        eff = self.c_cap * self.c_running * self.c_filter * self.c_flowing()
        z_cap = np.bincount(self.c_zone[self.c_zone >= 0], weights=eff[self.c_zone >= 0], minlength=nz)
        self.z_ratio = z_heat / np.maximum(z_cap, 1.0)
        airflow_loss = 1.0 - z_cap / np.maximum(z_cap_nom, 1.0)
        # saturates at +45 degC: by then the room (or the stagnant coolant loop) is as hot as the load makes it
        z_target = np.minimum(10.0 * airflow_loss + 30.0 * np.maximum(self.z_ratio - 0.9, 0.0), 45.0)
        a = 1.0 if settle else 1 - np.exp(-dt / 240.0)
        self.z_excess += a * (z_target - self.z_excess)
        unit_share = np.where(self.c_running & (self.c_zone >= 0), eff, 0.0)
        z_share_tot = np.bincount(self.c_zone[self.c_zone >= 0], weights=unit_share[self.c_zone >= 0], minlength=nz)
        self.c_load = np.where(self.c_zone >= 0, z_heat[np.maximum(self.c_zone, 0)] * unit_share
                               / np.maximum(z_share_tot[np.maximum(self.c_zone, 0)], 1.0), 0.0)
        # air units: supply air warms with a third of the room's excess; a CDU's coolant takes all of it
        c_excess = np.where(self.c_zone >= 0, self.z_excess[np.maximum(self.c_zone, 0)], 0.0) if nz else np.zeros(len(self.c_zone))
        self.c_supply = self.c_setpoint + np.where(self.c_cdu, 1.0, 0.3) * c_excess
        base = np.where(self.r_zone >= 0, self.air_setpoint, 20.0) + 4.0
        zone_term = np.where((self.r_zone >= 0) & ~self.r_liquid, self.z_excess[np.maximum(self.r_zone, 0)] if nz else 0.0, 0.0)
        kw = self.r_power / 1000.0
        nb = np.zeros(nr)
        for side in (self.r_left, self.r_right):
            ok = side >= 0
            nb[ok] += 0.02 * np.maximum(kw[side[ok]] - kw.mean(), 0)
        end_of_row = ((self.r_left < 0) | (self.r_right < 0)) * 0.6
        r_target = base + zone_term + nb + end_of_row
        self.r_inlet += a * (r_target - self.r_inlet)
        self.s_inlet = self.r_inlet[self.s_rack] + 0.15 * self.s_slot

        # Die and memory temperatures (first-order lag towards inlet + R * P).
        fan = np.where(self.s_fan_ok[self.a_srv], 1.0, 1.9)
        t_target = self.s_inlet[self.a_srv] + self.a_rth * self.power * fan * self.rth_factor
        a_liquid = self.r_liquid[self.s_rack[self.a_srv]]
        if a_liquid.any():  # cold plate: coolant supply + a lower resistance; server fans barely matter
            zc = self.z_setpoint + self.z_excess
            coolant = zc[np.maximum(self.r_zone[self.s_rack[self.a_srv]], 0)]
            t_target = np.where(a_liquid, coolant + 0.75 * self.a_rth * self.power * self.rth_factor, t_target)
        b = 1.0 if settle else 1 - np.exp(-dt / 40.0)
        self.temp += b * (t_target - self.temp)
        self.mem_temp += b * (self.temp + 5.0 + self.hbm_extra - self.mem_temp)

        # Counters.
        self.energy += self.power * dt
        generated = np.round(self.a_tok * self.util * self.clk * dt)
        self.tokens += generated
        self.requests += generated / SERVING.generation_tokens_per_request  # whole requests in the output
        self.prompt_tokens += np.round(generated * SERVING.prompt_tokens_per_request
                                       / SERVING.generation_tokens_per_request)
        self.ecc_vol_corr += rng.poisson(0.0005, n) * self.a_nvidia
        self.ecc_corr = np.maximum(self.ecc_corr, self.ecc_vol_corr)

    def ups_alive(self) -> np.ndarray:
        """UPSes whose output carries their load (not dropped, battery not empty)."""
        return self.u_output_ok & ~(self.u_battery & (self.u_charge <= 0))

    def pdu_live(self) -> np.ndarray:
        """PDUs whose input is energised (their UPS delivers), whatever their breaker."""
        return self.ups_alive()[self.p_ups] if len(self.p_ups) else np.zeros(0, dtype=bool)

    def c_flowing(self) -> np.ndarray:
        """Share of rated coolant flow per unit: 1 for air units; 0 for a CDU whose pumps stopped
        or cavitate on a loop below 25 % coolant."""
        return np.where(self.c_cdu, (self.c_pump_ok & (self.c_level > 25.0)).astype(np.float64), 1.0)

    def ups_runtime_s(self) -> np.ndarray:
        """Runtime left on battery at the present load and charge (what the UPS reports)."""
        return ups_runtime_s(self.u_runtime, self.u_power / self.u_cap) * self.u_charge / 100.0

    def util_by_server(self) -> np.ndarray:
        ns = len(self.server_names)
        cnt = np.maximum(np.bincount(self.a_srv, minlength=ns), 1)
        return np.bincount(self.a_srv, weights=self.util, minlength=ns) / cnt

    def _transitions(self, was_up: np.ndarray) -> None:
        inv = self.inventory
        for i in np.flatnonzero(was_up & ~self.s_up):
            name = self.server_names[i]
            self._emit("accel_lost", inv.get(name), Severity.CRITICAL, f"server {name} lost power",
                       {"reason": "power"})
        for i in np.flatnonzero(~was_up & self.s_up):
            name = self.server_names[i]
            self._emit("accel_recovered", inv.get(name), Severity.CLEARED, f"server {name} powered again", {})

    # ----- events ---------------------------------------------------------------------------
    def _emit(self, kind: str, comp, severity: str, message: str, attrs: dict) -> None:
        target = comp.tags(self.inventory.site) if comp is not None else {"site": self.inventory.site}
        self._events.append(Event(self.now_ns, kind, "sim", target, severity, message, attrs))
        while len(self._events) > self._max_events:
            self._events.popleft()
            self._events_base += 1

    def events_since(self, cursor: int = 0) -> tuple[list[Event], int]:
        """Events emitted since `cursor` (0 = from the beginning that is still kept)."""
        start = max(cursor - self._events_base, 0)
        out = list(itertools.islice(self._events, start, None))
        return out, self._events_base + len(self._events)

    # ----- faults ---------------------------------------------------------------------------
    def inject(self, fault_type: str, target: str, duration_s: float | None = -1.0, **params) -> FaultLabel:
        """Inject a fault now. duration_s=-1 uses the type's default; None lasts until cleared."""
        if fault_type not in FAULT_TYPES:
            raise ValueError(f"unknown fault type {fault_type!r}; known: {sorted(FAULT_TYPES)}")
        ft = FAULT_TYPES[fault_type]
        comp = self.inventory.resolve(target)
        ft.check(self.inventory, comp)
        if duration_s is not None and duration_s < 0:
            duration_s = ft.default_duration_s
        end = None if duration_s is None else self.now_ns + int(duration_s * NS)
        label = FaultLabel(f"F{next(self._ids):04d}", fault_type, comp.name, self.now_ns, end,
                           ft.affected(self.inventory, comp.name), dict(params))
        self.labels.append(label)
        self._active[label.fault_id] = label
        self._apply(label, on=True)
        self._emit("fault_injected", comp, Severity.INFO, f"{fault_type} on {comp.name}",
                   {"fault_id": label.fault_id, "fault_type": fault_type})
        return label

    def clear(self, fault_id: str) -> FaultLabel:
        label = self._active.pop(fault_id)
        done = FaultLabel(label.fault_id, label.fault_type, label.target, label.start_ns, self.now_ns,
                          label.affected, label.params)
        self.labels[self.labels.index(label)] = done
        self._apply(label, on=False)
        self._emit("fault_cleared", self.inventory.get(label.target), Severity.INFO,
                   f"{label.fault_type} on {label.target} cleared", {"fault_id": fault_id})
        return done

    def active_faults(self) -> list[FaultLabel]:
        return list(self._active.values())

    def _expire_faults(self) -> None:
        for label in list(self._active.values()):
            if label.end_ns is not None and self.now_ns >= label.end_ns:
                self._active.pop(label.fault_id)
                self._apply(label, on=False)
                self._emit("fault_cleared", self.inventory.get(label.target), Severity.INFO,
                           f"{label.fault_type} on {label.target} ended", {"fault_id": label.fault_id})

    def _apply(self, label: FaultLabel, on: bool) -> None:
        ft = FAULT_TYPES[label.fault_type]
        ft.apply(self, label) if on else ft.clear(self, label)

    def _xid(self, i: int, xid: int, meaning: str) -> None:
        self.xid_total[i] += 1
        comp = self.inventory.get(self.inventory.accel_ids[i])
        self._emit("xid", comp, Severity.MAJOR if xid != 79 else Severity.CRITICAL, f"XID {xid}: {meaning}",
                   {"xid": xid, "accel": comp.name})

    def _drift(self) -> None:
        for c, label in self._clog.items():
            span = (label.end_ns or self.now_ns + 1) - label.start_ns
            frac = min(max((self.now_ns - label.start_ns) / max(span, 1), 0.0), 1.0)
            self.c_filter[c] = 1.0 - 0.55 * frac
        if self.c_leak.any():
            self.c_level = np.clip(self.c_level - self.c_leak * self.interval_s, 0.0, 100.0)

    # ----- outputs --------------------------------------------------------------------------
    def accel_values(self) -> dict[str, np.ndarray]:
        """What each accelerator's own sensors read now, keyed by catalogue metric name (NaN when
        lost): the state plus the unit's fixed offset and this step's noise, at full precision
        (the agents round as NVML and rbln-stat do)."""
        from dcops.sim.output import accel_fields

        return accel_fields(self)

    def batches(self) -> list[Batch]:
        """This step's samples of every measurement as the collectors deliver them: sensor bias,
        noise, resolution and stuck sensors applied; components whose telemetry is cut left out."""
        return build_batches(self)


