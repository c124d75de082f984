"""What the console shows, read through the Store protocol (and the alarm API when given).

Every page callback is a thin wrapper over one function here; these functions take a
`Context` and plain arguments and return frozen dataclasses or DataFrames, so they are tested
without a browser or a Flask request. Nothing here writes SQL: what is true now comes from the
store's current-state view (`dcops.store.current_view`), history from `Store.query_range` and
`Store.events`.

The floor snapshot (every accelerator's latest values, aligned to the inventory by integer
positions built once per app) is cached per refresh tick, so several callbacks and several
browsers on one tick share one pass over the view.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from dcops.store.current import current_view
from dcops.topology import Inventory

__all__ = [
    "ACCEL_STATES", "DEGRADED_WHEN", "Context", "FloorSnapshot", "accel_rates", "accel_states", "accel_values",
    "current", "current_state",
    "floor_snapshot", "latest_batch", "latest_frame", "rack_view", "RackView",
]

NS = 1_000_000_000
# Samples older than this (relative to the newest sample of the measurement) count as "no data".
MAX_AGE_S = 120.0

ACCEL_STATES = ("healthy", "degraded", "down", "no data")

# An accelerator that answers is "degraded" when any of these holds: (field, threshold, why).
DEGRADED_WHEN: tuple[tuple[str, float, str], ...] = (
    ("accel_thermal_throttle", 0.5, "thermal throttling"),
    ("accel_ecc_volatile_uncorrected", 0.5, "uncorrected ECC errors"),
    ("accel_remapped_rows_pending", 0.5, "row remap pending"),
    ("accel_remapped_rows_failure", 0.5, "row remapping failed"),
)

RACK_FIELDS = ("rack_power_w", "rack_feed_a_power_w", "rack_feed_b_power_w", "rack_inlet_temp_degc",
               "rack_outlet_temp_degc")
ACCEL_FIELDS = ("accel_up", "accel_temp_degc", *(f for f, _, _ in DEGRADED_WHEN))  # what the floor needs
RACK_ACCEL_FIELDS = (*ACCEL_FIELDS, "accel_power_w", "accel_util_pct")  # the rack view shows more
# Accelerators report every few seconds; older than this they count as "no data".
ACCEL_MAX_AGE_S = 60.0
SITE_FIELDS = ("site_it_power_w", "site_facility_power_w")


class _TickCache:
    """Values computed once per refresh tick (keyed by name and tick number)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, tuple[int, Any]] = {}

    def get(self, key: str, tick: int, compute: Callable[[], Any]) -> Any:
        with self._lock:
            hit = self._values.get(key)
            if hit is not None and hit[0] == tick:
                return hit[1]
        value = compute()
        with self._lock:
            self._values[key] = (tick, value)
        return value


@dataclass(frozen=True)
class Context:
    """What the console's callbacks read from; one per app, kept in the Flask app's config."""

    store: Any  # dcops.store.Store
    inventory: Inventory
    alarms: Any = None  # dcops.alerts.storage.repository.Repository, when the alerts stage is present
    refresh_s: float = 5.0
    energy_price_per_kwh: float = 0.12
    clock: Callable[[], float] = time.time
    cache: _TickCache = field(default_factory=_TickCache, compare=False)
    runbooks: Any = None  # dcops.alerts.runbooks.engine.RunbookEngine, when runbooks are configured
    alerting: Any = None  # dcops.alerts.config.AlertingConfig: receivers, routes, on-call (Admin page, read-only)
    memo: dict = field(default_factory=dict, compare=False)  # values derived from the (static) inventory

    def tick(self) -> int:
        return int(self.clock() // self.refresh_s)


CONFIG_KEY = "DCOPS_CONSOLE"


def current() -> Context:
    """The Context of the app serving this request."""
    import flask

    return flask.current_app.config[CONFIG_KEY]


# ----- store reads ----------------------------------------------------------------------------
def latest_batch(store, measurement: str, fields: Sequence[str], where=None,
                 max_age_s: float = MAX_AGE_S):
    """The latest row per series as a Batch, from the store's current-state view (kept on the
    write path; a process that does not ingest catches it up with range reads), never from a
    scan of history. Fields the site has never sent are left out instead of failing (a page
    renders before every collector has reported)."""
    view = current_view(store)
    view.sync(store)
    have = set(view.fields(measurement))
    return view.read(measurement, [f for f in fields if f in have], where=where, max_age_s=max_age_s)


def latest_frame(store, measurement: str, fields: Sequence[str], where=None,
                 max_age_s: float = MAX_AGE_S) -> pd.DataFrame:
    """`latest_batch` as a DataFrame with every wanted field (NaN where absent)."""
    frame = latest_batch(store, measurement, fields, where, max_age_s).to_frame()
    for f in fields:
        if f not in frame:
            frame[f] = np.nan
    return frame


def _state_codes(values: dict[str, np.ndarray]) -> np.ndarray:
    """The index in ACCEL_STATES of every accelerator, from its latest values."""
    up = values["accel_up"]
    degraded = np.zeros(len(up), dtype=bool)
    for f, threshold, _ in DEGRADED_WHEN:
        degraded |= np.nan_to_num(values[f], nan=0.0) > threshold
    return np.where(np.isnan(up), 3, np.where(up < 0.5, 2, np.where(degraded, 1, 0)))


def accel_states(frame: pd.DataFrame) -> np.ndarray:
    """One of ACCEL_STATES per row of an accel latest-frame."""
    codes = _state_codes({f: frame[f].to_numpy(np.float64) for f in ("accel_up", *(f for f, _, _ in DEGRADED_WHEN))})
    return np.asarray(ACCEL_STATES, dtype=object)[codes]


@dataclass(frozen=True)
class FloorSnapshot:
    """The floor at one moment: one row per rack, KPIs for the header."""

    time_ns: int
    racks: pd.DataFrame  # index rack; hall, row, position, power_kw, inlet_degc, hottest_degc, accel_*, alarm_rank
    accel_by_vendor: pd.DataFrame  # index vendor; columns ACCEL_STATES (counts)
    it_power_kw: float
    facility_power_kw: float
    pue: float | None
    incidents_by_severity: dict[str, int] | None


@dataclass(frozen=True)
class _AccelBase:
    """The inventory's accelerators and racks as arrays and integer codes (built once per app),
    so a refresh is array arithmetic over the view, never string matching per accelerator."""

    ids: np.ndarray  # accelerator ids, inventory order (the key the view aligns to)
    frame: pd.DataFrame  # accel_id, vendor, model, hall, row, rack, device
    rack_names: np.ndarray  # the inventory's racks, in order
    racks: pd.DataFrame  # index rack; hall, row, position
    rack_code: np.ndarray  # per accelerator, its rack's index in rack_names (-1 if none)
    vendors: list[str]
    vendor_code: np.ndarray
    of_rack: dict[str, np.ndarray]  # rack -> positions of its accelerators


def _accel_base(ctx: Context) -> _AccelBase:
    hit = ctx.memo.get("accel_base")
    if hit is None:
        inv = ctx.inventory
        ids = np.asarray(inv.accel_ids, dtype=object)
        tags = {k: np.asarray(inv.accel_tags[k], dtype=object) for k in ("vendor", "model", "hall", "row", "rack", "device")}
        frame = pd.DataFrame({"accel_id": ids, **tags})
        rack_names = np.asarray([r.name for r in inv.racks], dtype=object)
        racks = pd.DataFrame([(r.name, r.hall, r.row, r.attrs.get("position", 0)) for r in inv.racks],
                             columns=["rack", "hall", "row", "position"]).set_index("rack")
        lookup = {r: i for i, r in enumerate(rack_names.tolist())}
        rack_code = np.fromiter((lookup.get(r, -1) for r in tags["rack"].tolist()), dtype=np.intp, count=len(ids))
        vendors = sorted(set(tags["vendor"].tolist()))
        vlookup = {v: i for i, v in enumerate(vendors)}
        vendor_code = np.fromiter((vlookup[v] for v in tags["vendor"].tolist()), dtype=np.intp, count=len(ids))
        order = np.argsort(rack_code, kind="stable")
        bounds = np.searchsorted(rack_code[order], np.arange(len(rack_names) + 1))
        of_rack = {r: order[bounds[i]:bounds[i + 1]] for i, r in enumerate(rack_names.tolist())}
        hit = ctx.memo["accel_base"] = _AccelBase(ids, frame, rack_names, racks, rack_code, vendors, vendor_code,
                                                  of_rack)
    return hit


def current_state(ctx: Context):
    """The store's current-state view, caught up once per refresh tick where nothing feeds it."""
    view = current_view(ctx.store)
    ctx.cache.get("view_sync", ctx.tick(), lambda: view.sync(ctx.store))
    return view


def _state_counts(codes: np.ndarray, states: np.ndarray, index: Sequence[str]) -> pd.DataFrame:
    """Accelerators per (group code, state) as a frame indexed by `index`, columns ACCEL_STATES."""
    ok = codes >= 0
    n = len(ACCEL_STATES)
    flat = np.bincount(codes[ok] * n + states[ok], minlength=len(index) * n).reshape(len(index), n)
    return pd.DataFrame(flat, index=pd.Index(list(index), dtype=object), columns=list(ACCEL_STATES))


def accel_values(ctx: Context, fields: Sequence[str], at: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Latest fresh values of every inventory accelerator (inventory order; NaN: no data), or
    of those at positions `at` of the inventory."""
    return current_state(ctx).align("accel", fields, ("device", "accel"), _accel_base(ctx).ids,
                                    max_age_s=ACCEL_MAX_AGE_S, at=at)


def accel_rates(ctx: Context, counter: str, max_age_s: float = 120.0) -> np.ndarray:
    """Per-second rise of an accelerator counter between its last two samples (inventory
    order; NaN with a single sample or none), kept by the view on the write path."""
    return current_state(ctx).align_rate("accel", counter, ("device", "accel"), _accel_base(ctx).ids, max_age_s)


def _accel_frame(ctx: Context, rack: str | None = None, fields: Sequence[str] = ACCEL_FIELDS) -> pd.DataFrame:
    """Every accelerator of the inventory (or of one rack) with its latest values and state
    ("no data" when it has no recent sample)."""
    base = _accel_base(ctx)
    if rack is None:
        frame = base.frame.assign(**accel_values(ctx, fields))
    else:
        pos = base.of_rack.get(rack, np.empty(0, dtype=np.intp))
        frame = base.frame.iloc[pos].reset_index(drop=True).assign(**accel_values(ctx, fields, at=pos))
    frame["state"] = accel_states(frame)
    return frame


def _compute_floor(ctx: Context) -> FloorSnapshot:
    base = _accel_base(ctx)
    view = current_state(ctx)
    rv = view.align("rack", RACK_FIELDS, ("rack",), base.rack_names, max_age_s=MAX_AGE_S)
    t_ns = view.newest_ns("rack")
    cols: dict[str, np.ndarray] = {
        "power_kw": rv["rack_power_w"] / 1e3, "feed_a_kw": rv["rack_feed_a_power_w"] / 1e3,
        "feed_b_kw": rv["rack_feed_b_power_w"] / 1e3, "inlet_degc": rv["rack_inlet_temp_degc"],
        "outlet_degc": rv["rack_outlet_temp_degc"]}

    acc = accel_values(ctx, ACCEL_FIELDS)
    states = _state_codes(acc)
    if ctx.alarms is not None:  # healthy accelerators of open incidents count as degraded (data_alarms)
        from dcops.console.data_alarms import degrade_alarmed

        states = degrade_alarmed(ctx, base.ids, states)
    temp, ok = acc["accel_temp_degc"], base.rack_code >= 0
    hottest = pd.Series(temp[ok]).groupby(base.rack_code[ok]).max()
    cols["hottest_degc"] = hottest.reindex(np.arange(len(base.rack_names))).to_numpy(np.float64)
    counts = _state_counts(base.rack_code, states, base.rack_names.tolist())
    for s in ACCEL_STATES:
        cols["accel_" + s.replace(" ", "_")] = counts[s].to_numpy(int)
    cols["accel_total"] = counts.sum(axis=1).to_numpy(int)
    if ctx.alarms is not None:
        from dcops.console.data_alarms import rack_alarm_rank

        alarm_rank = rack_alarm_rank(ctx)
        cols["alarm_rank"] = np.asarray([alarm_rank.get(r, 0) for r in base.rack_names.tolist()])
    else:
        cols["alarm_rank"] = np.full(len(base.rack_names), np.nan)
    racks = pd.concat([base.racks, pd.DataFrame(cols, index=base.racks.index)], axis=1)

    by_vendor = _state_counts(base.vendor_code, states, base.vendors)
    by_vendor.index.name = "vendor"

    sf = latest_frame(ctx.store, "site", SITE_FIELDS)
    it_kw = float(np.nansum(sf["site_it_power_w"].to_numpy(np.float64))) / 1e3 if len(sf) else float("nan")
    if not len(sf) or np.isnan(sf["site_it_power_w"].to_numpy(np.float64)).all():
        it_kw = float(np.nansum(racks["power_kw"].to_numpy(np.float64))) if racks["power_kw"].notna().any() else float("nan")
    fac = sf["site_facility_power_w"].to_numpy(np.float64) if len(sf) else np.array([np.nan])
    fac_kw = float(np.nansum(fac)) / 1e3 if not np.isnan(fac).all() else float("nan")
    pue = fac_kw / it_kw if it_kw > 0 and fac_kw == fac_kw else None
    incidents = None
    if ctx.alarms is not None:
        from dcops.console.data_alarms import open_incident_counts

        incidents = open_incident_counts(ctx)
    return FloorSnapshot(t_ns, racks, by_vendor, it_kw, fac_kw, pue, incidents)


def floor_snapshot(ctx: Context) -> FloorSnapshot:
    """The floor snapshot for the current refresh tick (computed once per tick)."""
    return ctx.cache.get("floor", ctx.tick(), lambda: _compute_floor(ctx))


# ----- one rack -------------------------------------------------------------------------------
@dataclass(frozen=True)
class RackView:
    rack: str
    hall: str
    row: str
    feeds: dict[str, str]  # feed letter -> floor PDU
    rack_values: dict[str, float]
    servers: pd.DataFrame  # one row per server: device, kind, power_w, inlet_degc, psu_ok, up
    accels: pd.DataFrame  # one row per accelerator: accel_id, device, vendor, model, state, temp, power, util
    pdus: pd.DataFrame  # the feeding floor PDUs and rack PDUs: name, kind, feed, power_kw, breaker


SERVER_FIELDS = ("server_up", "server_power_w", "server_inlet_temp_degc", "server_psu_ok")
PDU_FIELDS = ("pdu_power_w", "pdu_load_pct", "pdu_breaker_closed")


def _rack_members(ctx: Context) -> dict[str, tuple[tuple, tuple]]:
    """rack -> (its servers, its rack PDUs), from the inventory once per app."""
    hit = ctx.memo.get("rack_members")
    if hit is None:
        servers: dict[str, list] = {}
        pdus: dict[str, list] = {}
        for c in ctx.inventory.components.values():
            if c.kind == "rack_pdu":
                pdus.setdefault(c.rack, []).append(c)
        for c in ctx.inventory.servers:
            servers.setdefault(c.rack, []).append(c)
        hit = ctx.memo["rack_members"] = {r.name: (tuple(servers.get(r.name, ())), tuple(pdus.get(r.name, ())))
                                          for r in ctx.inventory.racks}
    return hit


def rack_view(ctx: Context, rack: str) -> RackView:
    """Devices, accelerators, PDUs and feeds of one rack. KeyError names an unknown rack."""
    inv = ctx.inventory
    comp = inv.get(rack)
    if comp.kind != "rack":
        raise KeyError(f"{rack!r} is a {comp.kind}, not a rack")
    rv = latest_frame(ctx.store, "rack", RACK_FIELDS, where={"rack": rack})
    rack_values = {f: float(rv[f].iloc[-1]) if len(rv) else float("nan") for f in RACK_FIELDS}

    servers, rack_pdus = _rack_members(ctx).get(rack, ((), ()))
    sb = latest_batch(ctx.store, "server", SERVER_FIELDS, where={"rack": rack})
    at = {d: i for i, d in enumerate(sb.tags["device"].tolist())} if "device" in sb.tags else {}  # later rows win

    def get(name: str, f: str) -> float:
        i = at.get(name)
        return float(sb.fields[f][i]) if i is not None and f in sb.fields else float("nan")

    rows = [{"device": s.name, "kind": s.attrs.get("kind", ""), "feeds": "/".join(s.attrs.get("psus", ())),
             "up": get(s.name, "server_up"), "power_w": get(s.name, "server_power_w"),
             "inlet_degc": get(s.name, "server_inlet_temp_degc"), "psu_ok": get(s.name, "server_psu_ok")}
            for s in servers]
    servers_df = pd.DataFrame(rows, columns=["device", "kind", "feeds", "up", "power_w", "inlet_degc", "psu_ok"])

    acc = _accel_frame(ctx, rack, RACK_ACCEL_FIELDS)
    accels = acc[["accel_id", "device", "vendor", "model", "state", "accel_temp_degc",
                                       "accel_power_w", "accel_util_pct"]].reset_index(drop=True)

    feeds = dict(comp.attrs.get("feeds", {}))
    pdu_names = list(feeds.values())
    pf = latest_frame(ctx.store, "pdu", PDU_FIELDS, where={"device": pdu_names}) if pdu_names else None
    if pf is not None and len(pf) and "index" in pf:
        pf = pf[pf["index"].astype(str) == ""]
    pf = pf.drop_duplicates("device", keep="last").set_index("device") if pf is not None and len(pf) else None
    prow = []
    for feed, pdu in sorted(feeds.items()):
        get = (lambda f: float(pf.at[pdu, f]) if pf is not None and pdu in pf.index else float("nan"))  # noqa: E731
        prow.append({"name": pdu, "kind": "floor PDU", "feed": feed, "power_kw": get("pdu_power_w") / 1e3,
                     "load_pct": get("pdu_load_pct"), "breaker_closed": get("pdu_breaker_closed")})
    for rp in rack_pdus:
        prow.append({"name": rp.name, "kind": "rack PDU", "feed": rp.attrs.get("feed", ""), "power_kw": float("nan"),
                     "load_pct": float("nan"), "breaker_closed": float("nan")})
    pdus = pd.DataFrame(prow, columns=["name", "kind", "feed", "power_kw", "load_pct", "breaker_closed"])
    return RackView(rack, comp.hall, comp.row, feeds, rack_values, servers_df, accels, pdus)
