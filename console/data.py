"""What the console shows, read through the Store protocol (and the alarm API when given).

Every page callback is a thin wrapper over one function here; these functions take a
`Context` and plain arguments and return frozen dataclasses or DataFrames, so they are tested
without a browser or a Flask request. Nothing here writes SQL: what is true now comes from the
store's current-state view (`dcops.store.current_view`), history from `Store.query_range` and
`Store.events`.

The floor snapshot is the expensive read (every accelerator's latest row); it is cached per
refresh tick, so several callbacks and several browsers on one tick share one store read.
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
    "ACCEL_STATES", "DEGRADED_WHEN", "Context", "FloorSnapshot", "accel_states", "current",
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


class _KnownFields:
    """Fields each measurement has in the store, learnt from a failed read; forgotten after
    `ttl_s` so fields that appear later (a new collector) are picked up."""

    def __init__(self, clock: Callable[[], float], ttl_s: float = 300.0) -> None:
        self._clock, self._ttl = clock, ttl_s
        self._known: dict[str, tuple[float, set[str]]] = {}

    def get(self, measurement: str) -> set[str] | None:
        hit = self._known.get(measurement)
        return hit[1] if hit and self._clock() - hit[0] < self._ttl else None

    def put(self, measurement: str, fields: set[str]) -> None:
        self._known[measurement] = (self._clock(), fields)


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
    known: _KnownFields = field(default=None, compare=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.known is None:
            object.__setattr__(self, "known", _KnownFields(self.clock))

    def tick(self) -> int:
        return int(self.clock() // self.refresh_s)


CONFIG_KEY = "DCOPS_CONSOLE"


def current() -> Context:
    """The Context of the app serving this request."""
    import flask

    return flask.current_app.config[CONFIG_KEY]


# ----- store reads ----------------------------------------------------------------------------
def latest_batch(store, measurement: str, fields: Sequence[str], where=None,
                 max_age_s: float = MAX_AGE_S, known: "_KnownFields | None" = None):
    """The latest row per series as a Batch, from the store's current-state view (kept on the
    write path; a process that does not ingest catches it up with range reads), never from a
    scan of history. Fields the site has never sent are left out instead of failing (a page
    renders before every collector has reported). `known` is no longer needed (the view knows
    its fields); it is accepted for callers that pass it."""
    view = current_view(store)
    view.sync(store)
    have = set(view.fields(measurement))
    return view.read(measurement, [f for f in fields if f in have], where=where, max_age_s=max_age_s)


def latest_frame(store, measurement: str, fields: Sequence[str], where=None,
                 max_age_s: float = MAX_AGE_S, known: "_KnownFields | None" = None) -> pd.DataFrame:
    """`latest_batch` as a DataFrame with every wanted field (NaN where absent)."""
    frame = latest_batch(store, measurement, fields, where, max_age_s, known).to_frame()
    for f in fields:
        if f not in frame:
            frame[f] = np.nan
    return frame


def accel_states(frame: pd.DataFrame) -> np.ndarray:
    """One of ACCEL_STATES per row of an accel latest-frame."""
    up = frame["accel_up"].to_numpy(np.float64)
    degraded = np.zeros(len(frame), dtype=bool)
    for f, threshold, _ in DEGRADED_WHEN:
        degraded |= np.nan_to_num(frame[f].to_numpy(np.float64), nan=0.0) > threshold
    state = np.where(up < 0.5, "down", np.where(degraded, "degraded", "healthy")).astype(object)
    state[np.isnan(up)] = "no data"
    return state


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


def _accel_base(ctx: Context) -> tuple[pd.DataFrame, pd.Index]:
    """The inventory's accelerators as a frame and an index of their ids (built once per app)."""
    hit = ctx.memo.get("accel_base")
    if hit is None:
        inv = ctx.inventory
        base = pd.DataFrame({"accel_id": inv.accel_ids, "vendor": inv.accel_tags["vendor"],
                             "model": inv.accel_tags["model"], "hall": inv.accel_tags["hall"],
                             "row": inv.accel_tags["row"], "rack": inv.accel_tags["rack"],
                             "device": inv.accel_tags["device"]})
        hit = ctx.memo["accel_base"] = (base, pd.Index(base["accel_id"]))
    return hit


def _state_counts(keys: np.ndarray, states: np.ndarray, index: Sequence[str]) -> pd.DataFrame:
    """Accelerators per (key, state) as a frame indexed by `index`, columns ACCEL_STATES."""
    k = pd.Index(index).get_indexer(keys)
    s = pd.Index(ACCEL_STATES).get_indexer(states)
    ok = (k >= 0) & (s >= 0)
    n = len(ACCEL_STATES)
    flat = np.bincount(k[ok] * n + s[ok], minlength=len(index) * n).reshape(len(index), n)
    return pd.DataFrame(flat, index=pd.Index(index), columns=list(ACCEL_STATES))


def _accel_frame(ctx: Context, rack: str | None = None, fields: Sequence[str] = ACCEL_FIELDS) -> pd.DataFrame:
    """Every accelerator of the inventory (or of one rack) with its latest values and state
    ("no data" when it has no recent sample)."""
    base, index = _accel_base(ctx)
    if rack is not None:
        base = base[base["rack"] == rack].reset_index(drop=True)
        index = pd.Index(base["accel_id"])
    got = latest_batch(ctx.store, "accel", fields, where={"rack": rack} if rack else None,
                       max_age_s=ACCEL_MAX_AGE_S, known=ctx.known)
    values = {f: np.full(len(base), np.nan) for f in fields}
    if len(got):
        ids = np.asarray(got.tags["device"], dtype=object) + ":" + np.asarray(got.tags["accel"], dtype=object)
        pos = index.get_indexer(ids)
        ok = pos >= 0
        for f in fields:
            if f in got.fields:
                values[f][pos[ok]] = got.fields[f][ok]
    out = base.assign(**values)
    out["state"] = accel_states(out)
    return out


def _compute_floor(ctx: Context) -> FloorSnapshot:
    inv = ctx.inventory
    racks = pd.DataFrame(
        [(r.name, r.hall, r.row, r.attrs.get("position", 0)) for r in inv.racks],
        columns=["rack", "hall", "row", "position"]).set_index("rack")
    rf = latest_frame(ctx.store, "rack", RACK_FIELDS, known=ctx.known)
    t_ns = int(rf["time_ns"].max()) if len(rf) else 0
    if len(rf):
        rf = rf.drop_duplicates("rack", keep="last").set_index("rack")
    else:
        rf = pd.DataFrame(columns=list(RACK_FIELDS), index=pd.Index([], name="rack"))
    racks["power_kw"] = rf["rack_power_w"].reindex(racks.index).astype(float) / 1e3
    racks["feed_a_kw"] = rf["rack_feed_a_power_w"].reindex(racks.index).astype(float) / 1e3
    racks["feed_b_kw"] = rf["rack_feed_b_power_w"].reindex(racks.index).astype(float) / 1e3
    racks["inlet_degc"] = rf["rack_inlet_temp_degc"].reindex(racks.index).astype(float)
    racks["outlet_degc"] = rf["rack_outlet_temp_degc"].reindex(racks.index).astype(float)

    acc = _accel_frame(ctx)
    by_rack = acc.groupby("rack")
    racks["hottest_degc"] = by_rack["accel_temp_degc"].max().reindex(racks.index)
    counts = _state_counts(acc["rack"].to_numpy(), acc["state"].to_numpy(), list(racks.index))
    for s in ACCEL_STATES:
        racks["accel_" + s.replace(" ", "_")] = counts[s].astype(int)
    racks["accel_total"] = counts.sum(axis=1).astype(int)
    if ctx.alarms is not None:
        from dcops.console.data_alarms import rack_alarm_rank

        alarm_rank = rack_alarm_rank(ctx)
        racks["alarm_rank"] = [alarm_rank.get(r, 0) for r in racks.index]
    else:
        racks["alarm_rank"] = np.nan

    vendors = sorted(set(acc["vendor"]))
    by_vendor = _state_counts(acc["vendor"].to_numpy(), acc["state"].to_numpy(), vendors)
    by_vendor.index.name = "vendor"

    sf = latest_frame(ctx.store, "site", SITE_FIELDS, known=ctx.known)
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


def rack_view(ctx: Context, rack: str) -> RackView:
    """Devices, accelerators, PDUs and feeds of one rack. KeyError names an unknown rack."""
    inv = ctx.inventory
    comp = inv.get(rack)
    if comp.kind != "rack":
        raise KeyError(f"{rack!r} is a {comp.kind}, not a rack")
    rv = latest_frame(ctx.store, "rack", RACK_FIELDS, where={"rack": rack}, known=ctx.known)
    rack_values = {f: float(rv[f].iloc[-1]) if len(rv) else float("nan") for f in RACK_FIELDS}

    servers = [c for c in inv.servers if c.rack == rack]
    sf = latest_frame(ctx.store, "server", SERVER_FIELDS, where={"rack": rack}, known=ctx.known)
    sf = sf.drop_duplicates("device", keep="last").set_index("device") if len(sf) else None
    rows = []
    for s in servers:
        get = (lambda f: float(sf.at[s.name, f]) if sf is not None and s.name in sf.index else float("nan"))  # noqa: E731
        rows.append({"device": s.name, "kind": s.attrs.get("kind", ""), "feeds": "/".join(s.attrs.get("psus", ())),
                     "up": get("server_up"), "power_w": get("server_power_w"),
                     "inlet_degc": get("server_inlet_temp_degc"), "psu_ok": get("server_psu_ok")})
    servers_df = pd.DataFrame(rows, columns=["device", "kind", "feeds", "up", "power_w", "inlet_degc", "psu_ok"])

    acc = _accel_frame(ctx, rack, RACK_ACCEL_FIELDS)
    accels = acc[["accel_id", "device", "vendor", "model", "state", "accel_temp_degc",
                                       "accel_power_w", "accel_util_pct"]].reset_index(drop=True)

    feeds = dict(comp.attrs.get("feeds", {}))
    pdu_names = list(feeds.values())
    pf = latest_frame(ctx.store, "pdu", PDU_FIELDS, where={"device": pdu_names}, known=ctx.known) if pdu_names else None
    if pf is not None and len(pf) and "index" in pf:
        pf = pf[pf["index"].astype(str) == ""]
    pf = pf.drop_duplicates("device", keep="last").set_index("device") if pf is not None and len(pf) else None
    prow = []
    for feed, pdu in sorted(feeds.items()):
        get = (lambda f: float(pf.at[pdu, f]) if pf is not None and pdu in pf.index else float("nan"))  # noqa: E731
        prow.append({"name": pdu, "kind": "floor PDU", "feed": feed, "power_kw": get("pdu_power_w") / 1e3,
                     "load_pct": get("pdu_load_pct"), "breaker_closed": get("pdu_breaker_closed")})
    for rp in (c for c in inv.components.values() if c.kind == "rack_pdu" and c.rack == rack):
        prow.append({"name": rp.name, "kind": "rack PDU", "feed": rp.attrs.get("feed", ""), "power_kw": float("nan"),
                     "load_pct": float("nan"), "breaker_closed": float("nan")})
    pdus = pd.DataFrame(prow, columns=["name", "kind", "feed", "power_kw", "load_pct", "breaker_closed"])
    return RackView(rack, comp.hall, comp.row, feeds, rack_values, servers_df, accels, pdus)
