"""Batches for a site's inventory written straight into a store (what the simulator would send)."""

from __future__ import annotations

import numpy as np

from dcops.batch import Batch, Event

NS = 1_000_000_000


def site_batches(inv, t_ns: int, *, inlet: dict[str, float] | None = None, down: tuple[str, ...] = (),
                 throttled: tuple[str, ...] = (), seed: int = 0, tokens_base: float = 0.0) -> list[Batch]:
    """One poll of every rack, server, accelerator, PDU and the site totals at `t_ns`.

    `inlet` overrides rack inlet temperatures; `down` accelerators answer accel_up=0;
    `throttled` accelerators report thermal throttling.
    """
    rng = np.random.default_rng(seed)
    inlet = inlet or {}
    racks = [r.name for r in inv.racks]
    n_acc = inv.n_accel
    tags = inv.accel_tags
    up = np.ones(n_acc)
    up[np.isin(inv.accel_ids, list(down))] = 0.0
    thr = np.isin(inv.accel_ids, list(throttled)).astype(float)
    power = inv.accel_tdp_w * 0.7 * up
    temp = np.where(up > 0, 55.0 + 10 * rng.random(n_acc) + 25 * thr, np.nan)
    acc = Batch("accel", np.full(n_acc, t_ns), {k: v for k, v in tags.items()}, {
        "accel_up": up, "accel_temp_degc": temp, "accel_power_w": power,
        "accel_util_pct": np.where(up > 0, 70.0, 0.0), "accel_thermal_throttle": thr,
        "accel_tokens_total": np.where(up > 0, tokens_base + np.where(tags["vendor"] == "nvidia", 1000.0, 400.0)
                                       * (t_ns / NS), np.nan),
    })
    rack_power = {r: float(power[tags["rack"] == r].sum()) + 1600.0 for r in racks}
    rc = [inv.get(r) for r in racks]
    rack = Batch("rack", np.full(len(racks), t_ns),
                 {"site": [inv.site] * len(racks), "hall": [c.hall for c in rc], "row": [c.row for c in rc],
                  "rack": racks},
                 {"rack_power_w": [rack_power[r] for r in racks],
                  "rack_feed_a_power_w": [rack_power[r] / 2 for r in racks],
                  "rack_feed_b_power_w": [rack_power[r] / 2 for r in racks],
                  "rack_inlet_temp_degc": [inlet.get(r, 24.0) for r in racks],
                  "rack_outlet_temp_degc": [inlet.get(r, 24.0) + 12 for r in racks]})
    srv = inv.servers
    server = Batch("server", np.full(len(srv), t_ns),
                   {"site": [inv.site] * len(srv), "hall": [s.hall for s in srv], "row": [s.row for s in srv],
                    "rack": [s.rack for s in srv], "device": [s.name for s in srv]},
                   {"server_up": np.ones(len(srv)), "server_power_w": np.full(len(srv), 3000.0),
                    "server_inlet_temp_degc": [inlet.get(s.rack, 24.0) for s in srv],
                    "server_psu_ok": np.full(len(srv), 2.0)})
    pdus = inv.of_kind("pdu")
    pdu = Batch("pdu", np.full(len(pdus), t_ns),
                {"site": [inv.site] * len(pdus), "hall": [p.hall for p in pdus], "device": [p.name for p in pdus],
                 "index": [""] * len(pdus)},
                {"pdu_power_w": np.full(len(pdus), 20_000.0), "pdu_load_pct": np.full(len(pdus), 25.0),
                 "pdu_breaker_closed": np.ones(len(pdus))})
    it = sum(rack_power.values())
    site = Batch("site", np.array([t_ns]), {"site": [inv.site]},
                 {"site_it_power_w": [it], "site_facility_power_w": [it * 1.3]})
    return [acc, rack, server, pdu, site]


def xid_event(inv, accel: str, t_ns: int) -> Event:
    c = inv.get(accel)
    return Event(t_ns, "xid", "nvml", c.tags(inv.site), "critical", "XID 79: GPU has fallen off the bus",
                 {"xid": 79, "accel": accel})
