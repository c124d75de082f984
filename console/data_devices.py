"""The Devices page's data: the site as a tree (hall > row > rack > server > accelerator, facility
devices by kind), a grid of devices with their state now, and the panels a device gets.

Panels are chosen by what the device reports, not by its vendor: the fields its series (for an
accelerator, the series of its model) hold a value for in the store's current-state view. An
NPU that has no memory temperature or SM clock gets no panel for them. Titles and units are
written for people (`PANELS`), in the order they are shown.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dcops.console.data import MAX_AGE_S, Context, accel_states, accel_values, current_state
from dcops.console.data_series import DEVICE_CHARTS, ChartSpec, search, series_between
from dcops.topology import Component

__all__ = ["PANELS", "Panel", "TreeNode", "device_grid", "device_panels", "device_tree", "FACILITY_GROUPS", "panel_series",
           "reported_fields"]

GIB = float(2**30)


@dataclass(frozen=True)
class Panel:
    """One chart of a device: a field, its title for people, the unit shown and the factor that
    turns the stored (base-unit) value into it."""

    field: str
    title: str
    unit: str
    scale: float = 1.0


_P = Panel
# Every chartable field of each measurement, in the order shown; a device gets those it reports.
PANELS: dict[str, tuple[Panel, ...]] = {
    "accel": (
        _P("accel_temp_degc", "Core temperature", "°C"), _P("accel_mem_temp_degc", "Memory (HBM) temperature", "°C"),
        _P("accel_power_w", "Power draw", "W"), _P("accel_power_limit_w", "Power limit (cap)", "W"),
        _P("accel_util_pct", "Compute utilisation", "%"), _P("accel_mem_util_pct", "Memory bandwidth utilisation", "%"),
        _P("accel_mem_used_bytes", "Device memory used", "GiB", 1 / GIB),
        _P("accel_sm_clock_mhz", "SM clock", "MHz"), _P("accel_mem_clock_mhz", "Memory clock", "MHz"),
        _P("accel_fan_pct", "Fan speed", "%"),
        _P("accel_thermal_throttle", "Thermal throttling (1 = throttled)", "state"),
        _P("accel_power_throttle", "Power-cap throttling (1 = throttled)", "state"),
        _P("accel_ecc_volatile_uncorrected", "Uncorrected ECC errors since driver load", "errors"),
        _P("accel_up", "Answering (1 = up, 0 = lost)", "state"),
    ),
    "server": (
        _P("server_power_w", "Power draw", "W"), _P("server_psu_a_power_w", "PSU A power", "W"),
        _P("server_psu_b_power_w", "PSU B power", "W"), _P("server_inlet_temp_degc", "Inlet temperature", "°C"),
        _P("server_fan_pct", "Fan speed", "%"), _P("server_psu_ok", "Healthy power supplies", "PSUs"),
        _P("server_up", "Answering (1 = up)", "state"),
    ),
    "rack": (
        _P("rack_power_w", "Power draw", "kW", 1e-3), _P("rack_feed_a_power_w", "Feed A power", "kW", 1e-3),
        _P("rack_feed_b_power_w", "Feed B power", "kW", 1e-3), _P("rack_inlet_temp_degc", "Inlet temperature", "°C"),
        _P("rack_outlet_temp_degc", "Outlet temperature", "°C"),
    ),
    "pdu": (
        _P("pdu_power_w", "Active power", "kW", 1e-3), _P("pdu_load_pct", "Load", "%"),
        _P("pdu_current_a", "Current", "A"), _P("pdu_voltage_v", "Voltage", "V"),
        _P("pdu_frequency_hz", "Frequency", "Hz"), _P("pdu_breaker_closed", "Breaker closed (1 = closed)", "state"),
    ),
    "ups": (
        _P("ups_output_power_w", "Output power", "kW", 1e-3), _P("ups_output_load_pct", "Output load", "%"),
        _P("ups_on_battery", "On battery (1 = yes)", "state"), _P("ups_battery_charge_pct", "Battery charge", "%"),
        _P("ups_battery_runtime_s", "Battery runtime left", "min", 1 / 60),
        _P("ups_battery_temp_degc", "Battery temperature", "°C"), _P("ups_input_voltage_v", "Input voltage", "V"),
        _P("ups_output_voltage_v", "Output voltage", "V"),
    ),
    "cooling": (
        _P("cooling_running", "Running (1 = yes)", "state"), _P("cooling_supply_temp_degc", "Supply temperature", "°C"),
        _P("cooling_return_temp_degc", "Return temperature", "°C"), _P("cooling_load_w", "Heat removed", "kW", 1e-3),
        _P("cooling_capacity_w", "Capacity", "kW", 1e-3), _P("cooling_fan_pct", "Fan speed", "%"),
        _P("cooling_flow_lpm", "Coolant flow", "l/min"), _P("cooling_pressure_kpa", "Coolant pressure", "kPa"),
        _P("cooling_filter_dp_pa", "Filter pressure drop", "Pa"), _P("cooling_coolant_level_pct", "Coolant level", "%"),
        _P("cooling_leak", "Leak detected (1 = yes)", "state"), _P("cooling_power_w", "Power draw", "kW", 1e-3),
    ),
    "env": (
        _P("env_temp_degc", "Temperature", "°C"), _P("env_humidity_pct", "Relative humidity", "%RH"),
        _P("env_dewpoint_degc", "Dew point", "°C"),
    ),
}

# Facility devices grouped by kind (label, predicate on the component), in the tree's order.
FACILITY_GROUPS: tuple[tuple[str, object], ...] = (
    ("UPS", lambda c: c.kind == "ups"),
    ("Floor PDUs", lambda c: c.kind == "pdu"),
    ("CRAC, CRAH and in-row units", lambda c: c.kind == "cooling" and c.attrs.get("unit_kind", "crac").lower() != "cdu"),
    ("CDUs", lambda c: c.kind == "cooling" and c.attrs.get("unit_kind", "").lower() == "cdu"),
    ("Environment probes", lambda c: c.kind == "env"),
)


def _spec(comp: Component) -> ChartSpec:
    try:
        return DEVICE_CHARTS[comp.kind]
    except KeyError:
        raise KeyError(f"{comp.name!r} is a {comp.kind}; no metrics are charted for that kind") from None


def reported_fields(ctx: Context, comp: Component) -> set[str]:
    """The fields the device reports: those with a value in the current-state view for its own
    series, or, for an accelerator, for any accelerator of its model (so a GPU that is lost right
    now keeps its panels, and a model that never reports a field gets none)."""
    spec = _spec(comp)
    if comp.kind == "accel":
        where = {"model": str(comp.attrs.get("model", ""))}
    else:
        tags = comp.tags(ctx.inventory.site)
        where = {t: tags[t] for t in spec.id_tags}

    def read() -> set[str]:
        batch = current_state(ctx).read(spec.measurement, None, where=where, max_age_s=3600.0)
        return {f for f, v in batch.fields.items() if len(v) and not np.isnan(np.asarray(v, np.float64)).all()}

    return ctx.cache.get(f"reported:{spec.measurement}:{sorted(where.items())}", ctx.tick(), read)


def device_panels(ctx: Context, name: str) -> tuple[ChartSpec, tuple[Panel, ...]]:
    """The chart spec of the device and the panels it gets (KeyError names an unknown device or
    a kind that has no metrics). Before anything reported, every panel of the kind."""
    comp = ctx.inventory.get(name)
    spec = _spec(comp)
    have = reported_fields(ctx, comp)
    panels = PANELS[spec.measurement]
    chosen = tuple(p for p in panels if p.field in have)
    return spec, chosen if have else panels


def panel_series(ctx: Context, name: str, start_ns: int, end_ns: int) -> tuple[tuple[Panel, ...], pd.DataFrame]:
    """The device's panels and their series in [start_ns, end_ns), values in the panels' units."""
    _, panels = device_panels(ctx, name)
    _, frame = series_between(ctx, name, start_ns, end_ns, [p.field for p in panels])
    for p in panels:
        if p.scale != 1.0:
            frame[p.field] = frame[p.field] * p.scale
    return panels, frame


# ----- the tree -------------------------------------------------------------------------------
@dataclass(frozen=True)
class TreeNode:
    name: str  # the component (empty for a group heading)
    label: str
    kind: str
    children: tuple["TreeNode", ...] = ()
    open: bool = False  # shown expanded


def _members(ctx: Context) -> dict[str, list[Component]]:
    """rack -> its servers, rack PDUs and probes; server -> its accelerators (once per app)."""
    hit = ctx.memo.get("device_members")
    if hit is None:
        hit = {}
        for c in ctx.inventory.components.values():
            if c.kind == "accel":
                hit.setdefault(c.device, []).append(c)
            elif c.kind in ("server", "rack_pdu", "env") and c.rack:
                hit.setdefault(c.rack, []).append(c)
        ctx.memo["device_members"] = hit
    return hit


def _label(c: Component) -> str:
    if c.kind == "accel":
        return f"{c.name.rsplit(':', 1)[1]}: {c.attrs.get('vendor', '')} {c.attrs.get('model', '')}"
    if c.kind == "server":
        return f"{c.name} ({c.attrs.get('kind', 'server')})"
    if c.kind in ("rack_pdu", "env"):
        return f"{c.name} ({'rack PDU' if c.kind == 'rack_pdu' else 'probe'})"
    return c.name


def device_tree(ctx: Context, text: str | None = None, selected: str | None = None,
                limit: int = 200) -> tuple[TreeNode, ...]:
    """Halls (rows > racks > servers > accelerators) then facility devices by kind. Without
    `text`, racks are listed closed and only the selected device's branch is opened down to its
    accelerators; with `text`, only branches holding a match (at most `limit`), opened."""
    inv = ctx.inventory
    members = _members(ctx)
    if text and text.strip():
        hits = search(ctx, text, limit=limit)
        keep = set()
        for c in hits:
            keep |= {c.name, c.hall, c.row, c.rack, c.device}
        opened = keep
    else:
        keep = None
        sel = inv.components.get(selected or "")
        opened = {sel.name, sel.hall, sel.row, sel.rack, sel.device} if sel is not None else set()
    opened.discard("")

    def shown(c: Component) -> bool:
        return keep is None or c.name in keep

    def node(c: Component, kids: tuple[TreeNode, ...] = ()) -> TreeNode:
        return TreeNode(c.name, _label(c), c.kind, kids, c.name in opened)

    def server_node(s: Component) -> TreeNode:
        accels = tuple(node(a) for a in members.get(s.name, ()) if shown(a) or (keep is not None and s.name in keep))
        return node(s, accels)

    def rack_node(r: Component) -> TreeNode:
        if r.name not in opened:  # closed racks are links: their contents come with the selection
            return node(r)
        return node(r, tuple(server_node(m) if m.kind == "server" else node(m)
                             for m in members.get(r.name, ()) if shown(m)))

    racks_of_row: dict[str, list[Component]] = {}
    for r in inv.racks:
        racks_of_row.setdefault(r.row, []).append(r)
    halls = []
    for h in inv.of_kind("hall"):
        rows = tuple(node(row, tuple(rack_node(r) for r in racks_of_row.get(row.name, ()) if shown(r)))
                     for row in inv.rows if row.hall == h.name and shown(row))
        if shown(h):
            halls.append(node(h, rows))
    facility = []
    for label, pred in FACILITY_GROUPS:
        devs = tuple(node(c) for c in inv.components.values() if pred(c) and shown(c))
        if devs:
            facility.append(TreeNode("", f"{label} ({len(devs)})", "group", devs,
                                     keep is not None or any(d.name in opened for d in devs)))
    return (*halls, *facility)


# ----- the grid -------------------------------------------------------------------------------
GRID_STATES = {"down": 0, "degraded": 1, "no data": 2, "healthy": 3, "": 4}


def _server_health(v: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a, b = v["server_psu_a_power_w"], v["server_psu_b_power_w"]
    installed = (~np.isnan(a)).astype(float) + (~np.isnan(b))  # a PSU that reports power is fitted
    # server_psu_ok counts the PSUs delivering power: fewer than fitted is redundancy lost
    short = ~np.isnan(v["server_psu_ok"]) & (v["server_psu_ok"] < installed)
    state = np.where(v["server_up"] == 0, "down", np.where(short, "degraded", "healthy"))
    power = np.where(np.isnan(a) & np.isnan(b), np.nan, np.nan_to_num(a) + np.nan_to_num(b))
    return np.where(np.isnan(v["server_up"]), "no data", state), v["server_inlet_temp_degc"], power


def _pdu_health(v: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    dead = (v["pdu_breaker_closed"] == 0) | (v["pdu_voltage_v"] < DEAD_BUS_V)
    seen = ~np.isnan(v["pdu_breaker_closed"]) | ~np.isnan(v["pdu_voltage_v"])
    return np.where(dead, "down", np.where(seen, "healthy", "no data")), np.full(len(dead), np.nan), v["pdu_power_w"]


def _ups_health(v: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    state = np.where(v["ups_output_voltage_v"] < DEAD_BUS_V, "down", np.where(v["ups_on_battery"] == 1, "degraded", "healthy"))
    seen = ~np.isnan(v["ups_output_voltage_v"]) | ~np.isnan(v["ups_on_battery"])
    return np.where(seen, state, "no data"), v["ups_battery_temp_degc"], v["ups_output_power_w"]


def _cooling_health(v: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    state = np.where(v["cooling_running"] == 0, "down", np.where(v["cooling_leak"] == 1, "degraded", "healthy"))
    return (np.where(np.isnan(v["cooling_running"]), "no data", state), v["cooling_supply_temp_degc"],
            v["cooling_power_w"])


def _env_health(v: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t = v["env_temp_degc"]
    return np.where(np.isnan(t), "no data", "healthy"), t, np.full(len(t), np.nan)


DEAD_BUS_V = 100.0  # an output or bus below this carries no load (nominal 208-415 V)
# kind -> (measurement, fields, (state, temperature, power) from those fields): what a server or
# facility device says about its own health in the current-state view
DEVICE_HEALTH = {
    "server": ("server", ("server_up", "server_psu_ok", "server_inlet_temp_degc", "server_psu_a_power_w",
                          "server_psu_b_power_w"), _server_health),
    "pdu": ("pdu", ("pdu_breaker_closed", "pdu_voltage_v", "pdu_power_w"), _pdu_health),
    "ups": ("ups", ("ups_output_voltage_v", "ups_on_battery", "ups_battery_temp_degc", "ups_output_power_w"), _ups_health),
    "cooling": ("cooling", ("cooling_running", "cooling_leak", "cooling_supply_temp_degc", "cooling_power_w"),
                _cooling_health),
    "env": ("env", ("env_temp_degc",), _env_health),
}


def _device_health(ctx: Context, comps: list[Component]) -> dict[str, tuple]:
    """name -> (state, temperature, power) for servers and facility devices, from the view."""
    out: dict[str, tuple] = {}
    view = current_state(ctx)
    by_kind: dict[str, list[Component]] = {}
    for c in comps:
        by_kind.setdefault(c.kind, []).append(c)
    for kind, members in by_kind.items():
        measurement, fields, health = DEVICE_HEALTH[kind]
        names, index = _kind_keys(ctx, kind)  # one key array per kind and site: the view caches its join
        at = np.asarray([index[c.name] for c in members], dtype=np.intp)
        vals = view.align(measurement, fields, ("device",), names, max_age_s=MAX_AGE_S, at=at)
        states, temps, powers = health(vals)
        out.update({c.name: (str(s), t, p) for c, s, t, p in zip(members, states, temps, powers)})
    return out


_KIND_KEYS: dict[tuple[int, str], tuple[object, np.ndarray, dict[str, int]]] = {}


def _kind_keys(ctx: Context, kind: str) -> tuple[np.ndarray, dict[str, int]]:
    key = (id(ctx.inventory), kind)
    hit = _KIND_KEYS.get(key)
    if hit is None or hit[0] is not ctx.inventory:
        names = np.asarray([c.name for c in ctx.inventory.of_kind(kind)], dtype=object)
        hit = _KIND_KEYS[key] = (ctx.inventory, names, {n: i for i, n in enumerate(names.tolist())})
    return hit[1], hit[2]


def _contents(ctx: Context, comp: Component | None) -> list[Component]:
    """What the grid lists for a selection: a hall's racks and facility devices, a row's racks, a
    rack's servers and their accelerators, a server's accelerators, else the device itself."""
    inv = ctx.inventory
    members = _members(ctx)
    if comp is None:
        return [c for c in inv.components.values() if c.kind in ("server", "ups", "pdu", "cooling", "env", "rack_pdu")]
    if comp.kind == "hall":
        return [c for c in inv.components.values() if c.hall == comp.name and c.kind in ("rack", "ups", "pdu", "cooling")
                or (c.kind == "env" and c.hall == comp.name and not c.rack)]
    if comp.kind == "row":
        return [r for r in inv.racks if r.row == comp.name]
    if comp.kind == "rack":
        out = []
        for m in members.get(comp.name, ()):
            out.append(m)
            out.extend(members.get(m.name, ()) if m.kind == "server" else ())
        return out
    if comp.kind == "server":
        return [comp, *members.get(comp.name, ())]
    return [comp]


def device_grid(ctx: Context, name: str | None = None, text: str | None = None) -> list[dict]:
    """Grid rows: the matches of `text`, else the contents of the selected component (the
    servers and facility devices of the site with nothing selected). Accelerators carry their
    state, temperature and power now; `state_rank` sorts the worst first."""
    inv = ctx.inventory
    comps = search(ctx, text, limit=500) if text and text.strip() else _contents(ctx, inv.components.get(name or ""))
    accels = [c.name for c in comps if c.kind == "accel"]
    acc: dict[str, tuple] = {}
    if accels:
        at = np.asarray([inv.accel_index[a] for a in accels], dtype=np.intp)
        vals = accel_values(ctx, ("accel_up", "accel_temp_degc", "accel_power_w", "accel_thermal_throttle",
                                  "accel_ecc_volatile_uncorrected", "accel_remapped_rows_pending",
                                  "accel_remapped_rows_failure"), at=at)
        states = accel_states(pd.DataFrame(vals))
        acc = {a: (s, t, p) for a, s, t, p in zip(accels, states, vals["accel_temp_degc"],
                                                  vals["accel_power_w"])}
    acc.update(_device_health(ctx, [c for c in comps if c.kind in DEVICE_HEALTH]))
    rows = []
    site = inv.site
    for c in comps:
        state, temp, power = acc.get(c.name, ("", np.nan, np.nan))
        rows.append({"name": c.name, "kind": c.kind if c.kind != "cooling" else c.attrs.get("unit_kind", "cooling"),
                     "vendor": c.attrs.get("vendor", ""), "model": c.attrs.get("model", "") or "",
                     "state": state, "state_rank": GRID_STATES.get(state, 4),
                     "temp_degc": None if temp != temp else round(float(temp), 1),
                     "power_w": None if power != power else round(float(power)),
                     "path": c.path(site), "link": f"[{c.name}](/devices?name={c.name})"})
    return rows
