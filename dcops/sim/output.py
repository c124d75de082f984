"""What the simulated site's sensors report: the state as catalogue fields, as delivered.

Readings are built column by column from the simulator's arrays. Per-unit bias, ageing and
noise (`dcops.sim.sensors`) are added here, never to the state; values are rounded to the
resolution the real collectors deliver; stuck sensors replay their frozen value; components
whose telemetry is cut (a dead top-of-rack switch, a dead agent) are left out: no rows at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from dcops.batch import Batch
from dcops.sim.model import SERVING, THROTTLE_BITS
from dcops.sim.sensors import quantise

if TYPE_CHECKING:  # pragma: no cover
    from dcops.sim.engine import Simulator

__all__ = ["accel_fields", "build_batches"]

_NV_ONLY = (
    "accel_mem_temp_degc", "accel_power_limit_w", "accel_energy_j_total", "accel_sm_clock_mhz", "accel_mem_clock_mhz",
    "accel_mem_util_pct", "accel_fan_pct", "accel_throttle_reasons", "accel_power_throttle",
    "accel_ecc_volatile_corrected", "accel_ecc_volatile_uncorrected", "accel_ecc_corrected_total",
    "accel_ecc_uncorrected_total", "accel_remapped_rows_correctable_total", "accel_remapped_rows_uncorrectable_total",
    "accel_remapped_rows_pending", "accel_remapped_rows_failure", "accel_pcie_replay_total",
    "accel_nvlink_crc_errors_total", "accel_nvlink_replay_total", "accel_nvlink_recovery_total", "accel_xid_total",
)


def _step(sim: "Simulator") -> int:
    return int(sim.now_ns // max(int(sim.interval_s * 1e9), 1))


def accel_fields(sim: "Simulator") -> dict[str, np.ndarray]:
    up = sim.s_up[sim.a_srv] & ~sim.lost
    noise = sim.sensors.noise(_step(sim), 0)
    n = len(sim.temp)
    reasons = (np.where(sim.thermal & (sim.mem_temp > sim.a_memslow - 3), THROTTLE_BITS["hw_thermal_slowdown"], 0)
               | np.where(sim.thermal, THROTTLE_BITS["sw_thermal_slowdown"], 0)
               | np.where(sim.power_capped, THROTTLE_BITS["sw_power_cap"], 0)
               | np.where(sim.util < 0.05, THROTTLE_BITS["gpu_idle"], 0))
    f = {
        "accel_up": up.astype(np.float64),
        "accel_temp_degc": sim.temp + sim.sensors.accel_temp + noise.normal(0, 0.3, n),
        "accel_mem_temp_degc": sim.mem_temp + sim.sensors.accel_mem_temp + noise.normal(0, 0.3, n),
        # The card's power controller regulates on this same sensor: a reading holds at the limit.
        "accel_power_w": np.minimum(sim.power * (1 + noise.normal(0, 0.01, n)), sim.power_limit),
        "accel_power_limit_w": sim.power_limit.copy(),
        "accel_energy_j_total": sim.energy.copy(),
        "accel_sm_clock_mhz": np.where(sim.util < 0.05, 345.0, sim.a_sm_max * sim.clk),
        "accel_mem_clock_mhz": sim.a_mem_clk.copy(),
        "accel_util_pct": sim.util * 100.0,
        "accel_mem_util_pct": sim.util * 70.0,
        "accel_mem_used_bytes": sim.a_mem_total * np.clip(0.35 + 0.55 * sim.util, 0, 1),
        "accel_mem_total_bytes": sim.a_mem_total.copy(),
        "accel_fan_pct": np.clip(30 + (sim.temp - 30) * 1.2, 30, 100),
        "accel_pstate": np.where(sim.util < 0.05, 8.0, 0.0),
        "accel_throttle_reasons": reasons.astype(np.float64),
        "accel_thermal_throttle": sim.thermal.astype(np.float64),
        "accel_power_throttle": sim.power_capped.astype(np.float64),
        "accel_ecc_volatile_corrected": sim.ecc_vol_corr.copy(),
        "accel_ecc_volatile_uncorrected": sim.ecc_vol_uncorr.copy(),
        "accel_ecc_corrected_total": sim.ecc_corr.copy(),
        "accel_ecc_uncorrected_total": sim.ecc_uncorr.copy(),
        "accel_remapped_rows_correctable_total": sim.remap_corr.copy(),
        "accel_remapped_rows_uncorrectable_total": sim.remap_uncorr.copy(),
        "accel_remapped_rows_pending": sim.remap_pending.copy(),
        "accel_remapped_rows_failure": sim.remap_failure.copy(),
        "accel_pcie_replay_total": sim.pcie_replay.copy(),
        "accel_pcie_link_gen": sim.a_pcie[:, 0].copy(),
        "accel_pcie_link_width": sim.a_pcie[:, 1].copy(),
        "accel_nvlink_crc_errors_total": sim.nvl_crc.copy(),
        "accel_nvlink_replay_total": sim.nvl_replay.copy(),
        "accel_nvlink_recovery_total": sim.nvl_recovery.copy(),
        "accel_xid_total": sim.xid_total.copy(),
        "accel_tokens_total": sim.tokens.copy(),
        # as vLLM exports them (vllm:request_success_total, vllm:prompt_tokens_total, vllm:num_requests_running)
        "accel_requests_total": np.floor(sim.requests),
        "accel_prompt_tokens_total": sim.prompt_tokens.copy(),
        "accel_requests_running": np.round(sim.a_tok * sim.util * sim.clk / SERVING.decode_tokens_per_s),
    }
    for (comp, metric), frozen in list(sim._stuck.items()):  # a stuck on-die sensor, as the agents read it
        i = sim.inventory.accel_index.get(comp)
        if i is not None and metric in f and up[i]:
            if frozen is None:
                sim._stuck[(comp, metric)] = frozen = float(f[metric][i])
            f[metric][i] = frozen
    down = ~up
    for k, v in f.items():
        v = f[k] = np.asarray(v, dtype=np.float64)
        if k != "accel_up":
            v[down] = np.nan
    for k in _NV_ONLY:
        f[k][~sim.a_nvidia] = np.nan
    return f


def _noisy(rng: np.random.Generator, x: np.ndarray, sd: float, rel: bool = False) -> np.ndarray:
    scale = np.abs(x) * sd if rel else sd
    return x + rng.normal(0, 1, np.shape(x)) * scale


def _keep(sim: "Simulator", batch: Batch, names) -> Batch | None:
    """The batch without rows of silent components (None when nothing is left)."""
    if not sim.silent:
        return batch
    mask = sim.reports(names)
    if mask.all():
        return batch
    return batch.select(mask) if mask.any() else None


def _apply_stuck(sim: "Simulator", batch: Batch, names: np.ndarray) -> None:
    for (comp, metric), frozen in list(sim._stuck.items()):
        if metric not in batch.fields:
            continue
        rows = np.flatnonzero(names == comp)
        if not len(rows):
            continue
        col = batch.fields[metric]
        if frozen is None:
            sim._stuck[(comp, metric)] = frozen = float(col[rows[0]])
        col[rows] = frozen


def build_batches(sim: "Simulator") -> list[Batch]:
    inv = sim.inventory
    site = inv.site
    t = sim.now_ns
    sen = sim.sensors
    rng = sen.noise(_step(sim), 1)
    out: list[Batch] = []

    def add(batch: Batch, names, stuck_names=None) -> None:
        _apply_stuck(sim, batch, np.asarray(names if stuck_names is None else stuck_names, dtype=object))
        quantise(batch)
        kept = _keep(sim, batch, names)
        if kept is not None:
            out.append(kept)

    # Accelerators (what the agents deliver: the readings of `accel_values`, rounded as NVML does)
    f = accel_fields(sim)
    n = inv.n_accel
    add(Batch("accel", np.full(n, t, dtype=np.int64), inv.accel_tags, f), inv.accel_ids)

    # Servers (BMC)
    ns = len(sim.server_names)
    srv = inv.servers
    stags = {"site": np.full(ns, site, dtype=object), "hall": np.array([s.hall for s in srv], dtype=object),
             "row": np.array([s.row for s in srv], dtype=object), "rack": np.array([s.rack for s in srv], dtype=object),
             "device": np.array(sim.server_names, dtype=object)}
    psu_ok = (sim.s_psu_ok & sim.s_has & (sim.s_psu_w > 0)).sum(axis=1).astype(np.float64)
    gain = sen.server_power_gain
    add(Batch("server", np.full(ns, t, dtype=np.int64), stags, {
        "server_up": sim.s_up.astype(np.float64),
        "server_power_w": _noisy(rng, sim.s_power * gain, 0.01, rel=True),
        "server_psu_a_power_w": np.where(sim.s_has[:, 0], sim.s_psu_w[:, 0] * gain, np.nan),
        "server_psu_b_power_w": np.where(sim.s_has[:, 1], sim.s_psu_w[:, 1] * gain, np.nan),
        "server_psu_ok": psu_ok,
        "server_inlet_temp_degc": np.where(sim.s_up, _noisy(rng, sim.s_inlet + sen.server_inlet, 0.2), np.nan),
        "server_fan_pct": np.where(sim.s_up, np.where(sim.s_fan_ok, 45 + 40 * sim.util_by_server(), 0.0), np.nan),
    }), sim.server_names)

    # Racks (rack PDUs and the rack's inlet/outlet probes)
    nr = len(sim.rack_names)
    racks = inv.racks
    rtags = {"site": np.full(nr, site, dtype=object), "hall": np.array([r.hall for r in racks], dtype=object),
             "row": np.array([r.row for r in racks], dtype=object), "rack": np.array(sim.rack_names, dtype=object)}
    has = sim.r_feed >= 0
    rack_max = np.maximum(np.bincount(sim.s_rack, weights=sim.s_idle, minlength=nr)
                          + np.bincount(sim.s_rack, weights=np.bincount(sim.a_srv, weights=sim.a_tdp, minlength=ns), minlength=nr), 1)
    rg = sen.rack_power_gain
    add(Batch("rack", np.full(nr, t, dtype=np.int64), rtags, {
        "rack_power_w": _noisy(rng, sim.r_power * rg, 0.005, rel=True),
        "rack_feed_a_power_w": np.where(has[:, 0], sim.r_feed_w[:, 0] * rg, np.nan),
        "rack_feed_b_power_w": np.where(has[:, 1], sim.r_feed_w[:, 1] * rg, np.nan),
        "rack_inlet_temp_degc": _noisy(rng, sim.r_inlet + sen.rack_inlet, 0.15),
        "rack_outlet_temp_degc": _noisy(rng, sim.r_inlet + 14.0 * sim.r_power / rack_max + sen.rack_outlet, 0.2),
    }), sim.rack_names)

    # Floor PDUs: input metered on the line side of the main breaker (live while the UPS delivers)
    npdu = len(sim.pdu_names)
    if npdu:
        live = sim.pdu_live()
        p = sim.p_power * sim.p_closed * live * sen.pdu_power_gain
        volts = np.where(live, _noisy(rng, 230.0 + sen.pdu_voltage, 0.4), 0.0)
        add(Batch("pdu", np.full(npdu, t, dtype=np.int64), _dev_tags(inv, site, sim.pdu_names), {
            "pdu_power_w": _noisy(rng, p, 0.003, rel=True),
            "pdu_apparent_power_va": p / 0.97,
            "pdu_current_a": p / (np.sqrt(3) * 400.0 * 0.97),
            "pdu_voltage_v": volts,
            "pdu_frequency_hz": np.where(live, 50.0, 0.0),
            "pdu_load_pct": 100.0 * p / sim.p_cap,
            "pdu_energy_wh_total": sim.p_energy.copy(),
            "pdu_breaker_closed": sim.p_closed.astype(np.float64),
        }), sim.pdu_names)

    # UPSes (UPS-MIB): reported runtime is the runtime the battery really has at this load
    nu = len(sim.ups_names)
    if nu:
        alive = sim.ups_alive()
        pw = sim.u_power * alive
        load = pw / sim.u_cap
        add(Batch("ups", np.full(nu, t, dtype=np.int64), _dev_tags(inv, site, sim.ups_names), {
            "ups_input_voltage_v": np.where(sim.u_battery, 0.0, _noisy(rng, 230.0 + sen.ups_voltage, 0.5)),
            "ups_input_frequency_hz": np.where(sim.u_battery, 0.0, 50.0),
            "ups_output_voltage_v": np.where(alive, _noisy(rng, 230.0 + sen.ups_voltage, 0.2), 0.0),
            "ups_output_frequency_hz": np.where(alive, 50.0, 0.0),
            "ups_output_power_w": pw,
            "ups_output_apparent_power_va": pw / 0.98,
            "ups_output_current_a": pw / (np.sqrt(3) * 400.0),
            "ups_output_load_pct": 100.0 * load,
            "ups_battery_charge_pct": sim.u_charge.copy(),
            "ups_battery_runtime_s": sim.ups_runtime_s(),
            "ups_battery_voltage_v": 480.0 + 0.6 * sim.u_charge,
            "ups_battery_temp_degc": _noisy(rng, np.full(nu, 24.0), 0.1),
            "ups_on_battery": (sim.u_battery & alive).astype(np.float64),
            "ups_time_on_battery_s": sim.u_on_batt_s.copy(),
        }), sim.ups_names)

    # Cooling units: CRACs report their filter's pressure drop (older filters drop more); CDUs
    # their coolant flow, pressure, level and leak rope instead
    nc = len(sim.unit_names)
    if nc:
        run = sim.c_running.astype(np.float64)
        frac = sim.c_load / sim.c_cap
        cdu = sim.c_cdu
        flow = sim.c_flowing() * run
        level = sim.c_level
        dp = sen.filter_dp_clean() / sim.c_filter ** 2
        add(Batch("cooling", np.full(nc, t, dtype=np.int64), _dev_tags(inv, site, sim.unit_names), {
            "cooling_running": run,
            "cooling_supply_temp_degc": _noisy(rng, np.where(flow > 0, sim.c_supply, sim.c_supply + 8.0) + sen.cooling_supply, 0.1),
            "cooling_return_temp_degc": _noisy(rng, sim.c_supply + 12.0 * frac * run + 2.0 + sen.cooling_return, 0.15),
            "cooling_setpoint_degc": sim.c_setpoint.copy(),
            "cooling_fan_pct": run * (55.0 + 35.0 * np.clip(frac / np.maximum(sim.c_filter, 0.3), 0, 1.3)),
            "cooling_load_w": sim.c_load.copy(),
            "cooling_capacity_w": sim.c_cap * sim.c_filter * run * sim.c_flowing(),
            "cooling_power_w": run * (sim.c_load / 3.5 + 2000.0),
            "cooling_filter_dp_pa": np.where(cdu, np.nan, _noisy(rng, dp, 0.02, rel=True)),
            "cooling_humidity_pct": _noisy(rng, np.full(nc, 45.0), 0.5),
            "cooling_flow_lpm": np.where(cdu, _noisy(rng, flow * (200.0 + 400.0 * frac), 0.01, rel=True), np.nan),
            "cooling_pressure_kpa": np.where(cdu, _noisy(rng, 60.0 + 120.0 * flow * np.clip(level / 100.0, 0, 1)
                                                         + 40.0 * np.clip(level / 100.0, 0, 1), 0.5), np.nan),
            "cooling_coolant_level_pct": np.where(cdu, level, np.nan),
            "cooling_leak": np.where(cdu, (sim.c_leak > 0).astype(np.float64), np.nan),
        }), sim.unit_names)

    # Environment sensors (rack inlet probes and room probes)
    envs = inv.of_kind("env")
    if envs:
        ri = sim._ri
        temps = np.array([sim.r_inlet[ri[e.rack]] if e.rack else sim.r_inlet.mean() + 2.0 for e in envs])
        names = [e.name for e in envs]
        etags = {"site": np.full(len(envs), site, dtype=object), "hall": np.array([e.hall for e in envs], dtype=object),
                 "row": np.array([e.row for e in envs], dtype=object), "rack": np.array([e.rack for e in envs], dtype=object),
                 "device": np.array(names, dtype=object), "index": np.full(len(envs), "", dtype=object)}
        hum = _noisy(rng, np.full(len(envs), 45.0), 0.8)
        temp = _noisy(rng, temps + sen.env_temp, 0.15)
        add(Batch("env", np.full(len(envs), t, dtype=np.int64), etags, {
            "env_temp_degc": temp,
            "env_humidity_pct": hum,
            "env_dewpoint_degc": temp - (100.0 - hum) / 5.0,
        }), names)

    # Site totals (the utility meter)
    it = float(sim.r_power.sum())
    cooling_w = float((sim.c_running * (sim.c_load / 3.5 + 2000.0)).sum()) if nc else 0.0
    facility = it + cooling_w + float(sim.u_power.sum() - sim.p_power.sum()) + 0.03 * it
    site_batch = Batch("site", np.array([t], dtype=np.int64), {"site": np.array([site], dtype=object)}, {
        "site_it_power_w": np.array([it]), "site_facility_power_w": np.array([facility]),
    })
    out.append(quantise(site_batch))
    return out


def _dev_tags(inv, site: str, names: list[str]) -> dict[str, np.ndarray]:
    n = len(names)
    return {"site": np.full(n, site, dtype=object), "hall": np.array([inv.get(x).hall for x in names], dtype=object),
            "device": np.array(names, dtype=object), "index": np.full(n, "", dtype=object)}
