"""Customer impact of an incident: the accelerators that depend on its root component, by vendor
and model, the inference throughput they lost (tokens per second, from the serving engines'
`accel_tokens_total` counters, before the incident against now) and the power they draw now."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dcops.console.data import Context
from dcops.console.data_series import NS, data_now_ns
from dcops.store.base import StoreError

__all__ = ["affected_accels", "incident_impact", "IMPACT_COLUMNS"]

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
