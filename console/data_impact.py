"""Customer impact of an incident: the accelerators that depend on its root component, by vendor
and model, the inference throughput they lost (tokens per second, from the serving engines'
`accel_tokens_total` counters, before the incident against now) and the power they draw now.

`impact_ranking` gives the same three figures for every open incident of the list, so a NOC
ranks incidents by customer impact; it is kept cheap: "now" comes from the current-state view
once per refresh tick for all incidents, the rate before each incident (a past window, which no
longer changes) is read once per incident and kept."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dcops.console.data import Context, accel_rates, accel_values
from dcops.console.data_series import NS, data_now_ns
from dcops.store.base import StoreError

__all__ = ["affected_accels", "incident_impact", "impact_ranking", "IMPACT_COLUMNS", "RANK_COLUMNS"]

IMPACT_COLUMNS = ["vendor", "model", "accelerators", "tokens_per_s_before", "tokens_per_s_now", "tokens_per_s_lost",
                  "power_kw_now"]
WINDOW_S = 120.0


def affected_accels(ctx: Context, root: str | None) -> list[str]:
    """The accelerators that are, or depend on, `root` (power, cooling, containment)."""
    inv = ctx.inventory
    if not root or root not in inv.components:
        return []
    names = inv.downstream(root) | {root}
    return [a for a in inv.accel_ids if a in names]


def _token_rate(ctx: Context, end: int, window_s: float = WINDOW_S, every_s: float = 10.0) -> pd.DataFrame:
    """Tokens per second per accelerator over the window ending at `end` (any time, past
    included), from accel_tokens_total: the counter's rise between its first and last sub-window."""
    start = end - int(window_s * NS)
    try:
        b = ctx.store.query_range("accel", ["accel_tokens_total"], start, end, every_s=every_s, agg="max",
                                  group_by=["device", "accel", "vendor", "model"])
    except StoreError:  # no accelerator exports tokens
        return pd.DataFrame(columns=["device", "accel", "vendor", "model", "tokens_per_s"])
    f = b.to_frame().dropna(subset=["accel_tokens_total"]) if len(b) else pd.DataFrame()
    if f.empty:
        return pd.DataFrame(columns=["device", "accel", "vendor", "model", "tokens_per_s"])
    g = f.sort_values("time_ns").groupby(["device", "accel", "vendor", "model"])
    first, last = g.first(), g.last()
    dt = (last["time_ns"] - first["time_ns"]) / NS
    rate = ((last["accel_tokens_total"] - first["accel_tokens_total"]).clip(lower=0) / dt).where(dt > 0)
    return rate.rename("tokens_per_s").reset_index()


def _rates(ctx: Context, end_ns: int, ids: set[str]) -> pd.DataFrame:
    r = _token_rate(ctx, end_ns)
    if r.empty:
        return pd.DataFrame(columns=["vendor", "model", "tokens_per_s"])
    key = r["device"].astype(str) + ":" + r["accel"].astype(str)
    return r[key.isin(ids)]


def incident_impact(ctx: Context, root: str | None, opened_ns: int, end_ns: int | None = None) -> pd.DataFrame:
    """One row per (vendor, model) of the affected accelerators: how many, tokens/s in the window
    before the incident opened and now, the loss, and their power now (kW). Empty when the root
    has no accelerators behind it."""
    ids = affected_accels(ctx, root)
    if not ids:
        return pd.DataFrame(columns=IMPACT_COLUMNS)
    inv = ctx.inventory
    idx = [inv.accel_index[a] for a in ids]
    base = pd.DataFrame({"accel_id": ids, "vendor": np.asarray(inv.accel_tags["vendor"], dtype=object)[idx],
                         "model": np.asarray(inv.accel_tags["model"], dtype=object)[idx]})
    out = base.groupby(["vendor", "model"]).agg(accelerators=("accel_id", "size")).reset_index()
    now = (end_ns or data_now_ns(ctx)) + 1
    idset = set(ids)
    before = _rates(ctx, int(opened_ns), idset).groupby(["vendor", "model"])["tokens_per_s"].sum(min_count=1)
    after = _rates(ctx, now, idset).groupby(["vendor", "model"])["tokens_per_s"].sum(min_count=1)
    out["tokens_per_s_before"] = [float(before.get((v, m), np.nan)) for v, m in zip(out["vendor"], out["model"])]
    # an affected accelerator that stopped reporting produces nothing: 0 now when it had a rate before
    out["tokens_per_s_now"] = [float(after.get((v, m), 0.0 if (v, m) in before.index else np.nan))
                               for v, m in zip(out["vendor"], out["model"])]
    out["tokens_per_s_lost"] = (out["tokens_per_s_before"] - out["tokens_per_s_now"]).clip(lower=0)
    try:
        p = ctx.store.query_range("accel", ["accel_power_w"], now - int(WINDOW_S * NS), now, every_s=WINDOW_S,
                                  agg="mean", group_by=["device", "accel", "vendor", "model"]).to_frame()
    except StoreError:
        p = pd.DataFrame()
    if len(p):
        p = p[(p["device"].astype(str) + ":" + p["accel"].astype(str)).isin(idset)]
        p = p.sort_values("time_ns").groupby(["device", "accel", "vendor", "model"]).last().reset_index()
        kw = p.groupby(["vendor", "model"])["accel_power_w"].sum() / 1e3
        out["power_kw_now"] = [float(kw.get((v, m), np.nan)) for v, m in zip(out["vendor"], out["model"])]
    else:
        out["power_kw_now"] = np.nan
    return out[IMPACT_COLUMNS]


RANK_COLUMNS = ("impact_accels", "impact_tokens_per_s_lost", "impact_power_kw")
_BEFORE_KEEP = 2_000  # incidents whose rate-before is kept (open incidents; a few thousand at most)


def _tokens_before(ctx: Context, opened_ns: int) -> pd.Series:
    """tokens/s per accelerator id in the window before `opened_ns`, read once and kept."""
    key = ("tokens_before", int(opened_ns))
    hit = ctx.memo.get(key)
    if hit is None:
        r = _token_rate(ctx, int(opened_ns))
        hit = pd.Series(r["tokens_per_s"].to_numpy(np.float64),
                        index=(r["device"].astype(str) + ":" + r["accel"].astype(str)).to_numpy(object))
        kept = [k for k in ctx.memo if isinstance(k, tuple) and k[0] == "tokens_before"]
        for old in kept[: max(0, len(kept) - _BEFORE_KEEP + 1)]:
            del ctx.memo[old]
        ctx.memo[key] = hit
    return hit


def _rank_one(ctx: Context, root: str | None, opened_ns: int, now_tps: np.ndarray, now_w: np.ndarray) -> dict:
    ids = affected_accels(ctx, root)
    if not ids:
        return {"impact_accels": 0, "impact_tokens_per_s_lost": 0.0, "impact_power_kw": 0.0}
    at = np.asarray([ctx.inventory.accel_index[a] for a in ids], dtype=np.intp)
    before = _tokens_before(ctx, opened_ns).reindex(ids).to_numpy(np.float64)
    now = now_tps[at]
    had = ~np.isnan(before)
    # an accelerator that had a rate before and none now (lost, stopped reporting) produces nothing
    lost = np.clip(before[had] - np.nan_to_num(now[had], nan=0.0), 0, None).sum()
    return {"impact_accels": len(ids), "impact_tokens_per_s_lost": round(float(lost), 1),
            "impact_power_kw": round(float(np.nansum(now_w[at])) / 1e3, 2)}


def impact_ranking(ctx: Context, incidents) -> dict[str, dict]:
    """incident id -> accelerators affected, tokens/s lost and their power now (kW), for the
    incidents given (the open ones: a resolved incident has no impact now). Computed once per
    refresh tick for the same incidents."""
    key = "impact_ranking:" + ",".join(sorted(i.id for i in incidents))

    def compute() -> dict[str, dict]:
        now_tps = accel_rates(ctx, "accel_tokens_total")
        now_w = accel_values(ctx, ("accel_power_w",))["accel_power_w"]
        return {i.id: _rank_one(ctx, i.root_component, i.opened_ns, now_tps, now_w) for i in incidents}

    return ctx.cache.get(key, ctx.tick(), compute)
