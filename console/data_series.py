"""Reads over time for the Devices and Fleet pages, through `Store.query_range` and `Store.events`.

Ranges are anchored at the newest sample in the store (not the wall clock), so a replayed or
accelerated simulation shows its data; the store downsamples to about `POINTS` per series.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import pandas as pd

from dcops.console.data import Context, accel_rates, accel_values, current_state
from dcops.batch import Event
from dcops.catalogue import metric
from dcops.store.base import StoreError
from dcops.store.current import current_view
from dcops.topology import Component

__all__ = ["DEVICE_CHARTS", "RANGES", "ChartSpec", "search", "data_now_ns", "device_series", "device_events",
           "fleet_table", "fleet_trends", "THROTTLE_TEMP_DEGC", "series_between"]

NS = 1_000_000_000
POINTS = 300
RANGES = {"15m": 900, "1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400}


@dataclass(frozen=True)
class ChartSpec:
    measurement: str
    id_tags: tuple[str, ...]  # tags that pick this component's series
    fields: tuple[str, ...]


# Which charts a component of each kind gets.
DEVICE_CHARTS: dict[str, ChartSpec] = {
    "accel": ChartSpec("accel", ("device", "accel"), ("accel_temp_degc", "accel_mem_temp_degc", "accel_power_w",
                                                      "accel_util_pct", "accel_sm_clock_mhz", "accel_up")),
    "server": ChartSpec("server", ("device",), ("server_power_w", "server_inlet_temp_degc", "server_psu_ok",
                                                "server_fan_pct")),
    "rack": ChartSpec("rack", ("rack",), ("rack_power_w", "rack_feed_a_power_w", "rack_feed_b_power_w",
                                          "rack_inlet_temp_degc", "rack_outlet_temp_degc")),
    "pdu": ChartSpec("pdu", ("device",), ("pdu_power_w", "pdu_load_pct", "pdu_breaker_closed")),
    "ups": ChartSpec("ups", ("device",), ("ups_output_power_w", "ups_output_load_pct", "ups_on_battery",
                                          "ups_battery_charge_pct")),
    "cooling": ChartSpec("cooling", ("device",), ("cooling_running", "cooling_supply_temp_degc",
                                                  "cooling_return_temp_degc", "cooling_load_w", "cooling_fan_pct")),
    "env": ChartSpec("env", ("device",), ("env_temp_degc", "env_humidity_pct")),
}

# Core temperature where thermal slowdown starts, for thermal headroom: per model where it
# differs from its vendor's default, else per vendor.
THROTTLE_TEMP_DEGC: dict[str, float] = {"nvidia": 87.0, "rebellions": 85.0, "L40S": 88.0}


def search(ctx: Context, text: str, limit: int = 50) -> list[Component]:
    """Components whose name or path contains `text` (case-insensitive), exact names first."""
    text = (text or "").strip().lower()
    if not text:
        return []
    comps = ctx.inventory.components
    site = ctx.inventory.site
    exact = [c for n, c in comps.items() if n.lower() == text]
    rest = [c for n, c in comps.items() if text in n.lower() and n.lower() != text]
    if len(exact) + len(rest) < limit:
        rest += [c for c in comps.values() if text not in c.name.lower() and text in c.path(site).lower()]
    return (exact + rest)[:limit]


def data_now_ns(ctx: Context) -> int:
    """The newest sample time the site sent (the current-state view's newest), else the clock."""
    def read() -> int:
        view = current_state(ctx)
        return max([view.newest_ns(m) for m in view.measurements()] or [0])

    t = ctx.cache.get("data_now", ctx.tick(), read)
    return t if t > 0 else int(ctx.clock() * NS)


def _where(comp: Component, spec: ChartSpec, site: str) -> dict[str, str]:
    tags = comp.tags(site)
    return {t: tags[t] for t in spec.id_tags}


def device_series(ctx: Context, name: str, range_key: str,
                  fields: Sequence[str] | None = None) -> tuple[ChartSpec, pd.DataFrame]:
    """The component's metrics over the range, downsampled by the store (KeyError names what)."""
    if range_key not in RANGES:
        raise KeyError(f"unknown range {range_key!r} (one of {list(RANGES)})")
    end = data_now_ns(ctx) + 1
    return series_between(ctx, name, end - RANGES[range_key] * NS, end, fields)


def series_between(ctx: Context, name: str, start_ns: int, end_ns: int,
                   fields: Sequence[str] | None = None) -> tuple[ChartSpec, pd.DataFrame]:
    """The component's charted metrics (or `fields` of its measurement) in [start_ns, end_ns),
    about POINTS windows per series."""
    comp = ctx.inventory.get(name)
    if comp.kind not in DEVICE_CHARTS:
        raise KeyError(f"{name!r} is a {comp.kind}; no metrics are charted for that kind")
    spec = DEVICE_CHARTS[comp.kind]
    if fields is not None:
        spec = replace(spec, fields=tuple(fields))
    span_s = max((end_ns - start_ns) / NS, 1.0)
    every = max(span_s / POINTS, 1.0)
    where = _where(comp, spec, ctx.inventory.site)
    try:
        batch = ctx.store.query_range(spec.measurement, list(spec.fields), start_ns, end_ns, every_s=every, agg="mean",
                                      where=where, group_by=list(spec.id_tags))
    except StoreError:  # a field this store never saw (not every source sends every metric)
        have = set(current_view(ctx.store).fields(spec.measurement))
        fields = [f for f in spec.fields if f in have]
        batch = ctx.store.query_range(spec.measurement, fields, start_ns, end_ns, every_s=every, agg="mean",
                                      where=where, group_by=list(spec.id_tags)) if fields else None
    frame = batch.to_frame() if batch is not None else pd.DataFrame(columns=["time_ns"])
    for f in spec.fields:
        if f not in frame:
            frame[f] = np.nan
    return spec, frame


def device_events(ctx: Context, name: str, range_key: str, limit: int = 200) -> list[Event]:
    """Events of the component (and of what it contains) in the range, newest first."""
    comp = ctx.inventory.get(name)
    end = data_now_ns(ctx) + 1
    start = end - RANGES.get(range_key, 3600) * NS
    key = {"hall": "hall", "row": "row", "rack": "rack"}.get(comp.kind)
    if key:
        where = {key: comp.name}
    else:
        where = {"device": comp.device if comp.kind in ("server", "accel") else comp.name}
    events = ctx.store.events(start, end, where=where, limit=10_000)
    if comp.kind == "accel":
        idx = comp.name.rsplit(":", 1)[1]
        events = [e for e in events if str(e.target.get("accel", idx)) == idx
                  or str(e.attributes.get("accel", comp.name)) == comp.name]
    return sorted(events, key=lambda e: e.time_ns, reverse=True)[:limit]


def unit_of(field: str) -> str:
    try:
        return metric(field).unit
    except KeyError:
        return ""


# ----- fleet ----------------------------------------------------------------------------------
FLEET_FIELDS = ("accel_up", "accel_power_w", "accel_util_pct", "accel_temp_degc")


def fleet_table(ctx: Context) -> pd.DataFrame:
    """GPUs and NPUs side by side, one row per (vendor, model); computed once per refresh tick."""
    return ctx.cache.get("fleet", ctx.tick(), lambda: _fleet_table(ctx))


def _fleet_groups(ctx: Context) -> tuple[pd.DataFrame, np.ndarray]:
    """(vendor, model) of the inventory with count and mean TDP, and each accelerator's group
    code (built once per app)."""
    hit = ctx.memo.get("fleet_groups")
    if hit is None:
        inv = ctx.inventory
        base = pd.DataFrame({"vendor": np.asarray(inv.accel_tags["vendor"], dtype=object),
                             "model": np.asarray(inv.accel_tags["model"], dtype=object), "tdp_w": inv.accel_tdp_w})
        counts = base.groupby(["vendor", "model"]).agg(count=("tdp_w", "size"), tdp_w=("tdp_w", "mean"))
        code = counts.index.get_indexer(pd.MultiIndex.from_frame(base[["vendor", "model"]]))
        hit = ctx.memo["fleet_groups"] = (counts.reset_index(), code)
    return hit


def _fleet_table(ctx: Context) -> pd.DataFrame:
    groups, code = _fleet_groups(ctx)
    out = groups.copy()
    values = accel_values(ctx, FLEET_FIELDS)
    up = values["accel_up"] > 0.5
    if not up.any():
        for c in ("reporting", "power_w", "util_pct", "temp_degc", "hottest_degc", "headroom_degc", "tokens_per_s",
                  "requests_per_s", "j_per_token", "cost_per_h"):
            out[c] = 0 if c == "reporting" else np.nan
        return out
    g, k = code[up], len(out)

    def per_group(v: np.ndarray, how: str) -> np.ndarray:
        """`how` (mean, sum, max) of the values with data per group, NaN for a group with none."""
        ok = ~np.isnan(v)
        gk, vk = g[ok], v[ok]
        n = np.bincount(gk, minlength=k)
        if how == "max":
            agg = np.full(k, -np.inf)
            np.maximum.at(agg, gk, vk)
        else:
            agg = np.bincount(gk, weights=vk, minlength=k)
            if how == "mean":
                agg = agg / np.maximum(n, 1)
        return np.where(n > 0, agg, np.nan)

    out["reporting"] = np.bincount(g, minlength=k).astype(int)
    out["power_w"] = per_group(values["accel_power_w"][up], "mean")
    total_w = per_group(values["accel_power_w"][up], "sum")
    out["util_pct"] = per_group(values["accel_util_pct"][up], "mean")
    out["temp_degc"] = per_group(values["accel_temp_degc"][up], "mean")
    hottest = per_group(values["accel_temp_degc"][up], "max")
    limit = out["model"].map(THROTTLE_TEMP_DEGC).fillna(out["vendor"].map(THROTTLE_TEMP_DEGC)).astype(float)
    out["hottest_degc"] = hottest
    out["headroom_degc"] = limit - hottest
    # tokens and requests per second (the serving engines' counters, vLLM's names mapped in
    # collectors/data/prom_map.yaml): each counter's rise between its last two samples, kept by
    # the view on the write path
    for counter, column in (("accel_tokens_total", "tokens_per_s"), ("accel_requests_total", "requests_per_s")):
        rate = accel_rates(ctx, counter)
        has = ~np.isnan(rate)
        total = np.bincount(code[has], weights=rate[has], minlength=k)
        out[column] = np.where(np.bincount(code[has], minlength=k) > 0, total, np.nan)
    out["j_per_token"] = (total_w / out["tokens_per_s"]).where(out["tokens_per_s"] > 0)
    out["cost_per_h"] = total_w / 1e3 * ctx.energy_price_per_kwh
    return out


def fleet_trends(ctx: Context, range_key: str) -> pd.DataFrame:
    """Mean power and utilisation per accelerator, per vendor, over the range."""
    end = data_now_ns(ctx) + 1
    start = end - RANGES[range_key] * NS
    every = max(RANGES[range_key] / 120, 1.0)
    try:
        b = ctx.store.query_range("accel", ["accel_power_w", "accel_util_pct"], start, end, every_s=every,
                                  agg="mean", group_by=["vendor"])
    except StoreError:
        return pd.DataFrame(columns=["time_ns", "vendor", "accel_power_w", "accel_util_pct"])
    return b.to_frame()
