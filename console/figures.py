"""Pure figure builders: data in, Plotly figure (as a plain dict) out. No store, no Flask, no Dash.

Figures are built as dicts rather than plotly.graph_objects: they are rebuilt on every refresh
of every browser, and graph_objects validation and templates cost more than the data read.
Tests check them with `plotly.graph_objects.Figure(fig)`."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from plotly.colors import get_colorscale

from dcops.console import severity

__all__ = ["COLOUR_BY", "ColourBy", "floor_figure", "timeseries_figure", "vendor_bars", "trend_figure",
           "empty_figure"]


@dataclass(frozen=True)
class ColourBy:
    label: str
    column: str  # column of FloorSnapshot.racks
    unit: str
    colorscale: object
    zmin: float | None
    zmax: float | None


_ALARM_SCALE = severity.floor_colorscale()

# What the operator can colour racks by; the floor page's radio buttons list these keys.
COLOUR_BY: dict[str, ColourBy] = {
    "inlet": ColourBy("Inlet temperature", "inlet_degc", "°C", get_colorscale("RdYlBu_r"), 18.0, 35.0),
    "power": ColourBy("Rack power", "power_kw", "kW", get_colorscale("Viridis"), 0.0, None),
    "hottest": ColourBy("Hottest accelerator", "hottest_degc", "°C", get_colorscale("RdYlBu_r"), 30.0, 95.0),
    "alarm": ColourBy("Alarm state", "alarm_rank", "", _ALARM_SCALE, -0.5, 4.5),
}
ALARM_LABELS = severity.FLOOR_LEVELS


def _fmt(v: float, unit: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "no data"
    return f"{v:.1f} {unit}".strip()


_BASE = {"paper_bgcolor": "#ffffff", "plot_bgcolor": "#ffffff", "font": {"family": "system-ui, sans-serif"},
         "xaxis": {"gridcolor": "#eeeeee"}, "yaxis": {"gridcolor": "#eeeeee", "zerolinecolor": "#dddddd"}}


def _layout(**kw) -> dict:
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in _BASE.items()}
    for k, v in kw.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k].update(v)
        else:
            out[k] = v
    return out


def empty_figure(message: str) -> dict:
    return {"data": [], "layout": _layout(
        annotations=[{"text": message, "showarrow": False, "x": 0.5, "y": 0.5, "xref": "paper", "yref": "paper",
                      "font": {"size": 14, "color": "#888"}}],
        xaxis={"visible": False}, yaxis={"visible": False}, height=200,
        margin={"l": 10, "r": 10, "t": 10, "b": 10})}


def _grid_list(values: np.ndarray, shape: tuple[int, int]) -> list:
    """A flat float array as nested lists for a heatmap's z, None where NaN (JSON has no NaN)."""
    out = values.astype(object)
    out[np.isnan(values)] = None
    return out.reshape(shape).tolist()


@dataclass(frozen=True)
class _HallGrid:
    """Where one hall's racks sit in its heatmap: rows down, positions across."""

    name: str
    rows: tuple[str, ...]
    width: int
    members: np.ndarray  # positions (in the racks frame) of the hall's racks
    cells: np.ndarray  # flat cell index (row * width + position) of each member
    names: tuple[tuple[str, ...], ...]  # the rack name of every cell ("" where none)


@functools.lru_cache(maxsize=8)
def _floor_grid(racks: tuple[str, ...], halls: tuple[str, ...], rows: tuple[str, ...],
                positions: tuple[int, ...]) -> tuple[_HallGrid, ...]:
    """The heatmap cells of a site's racks, halls and rows in the order they first appear. It
    depends on the site's layout only, so it is built once per site, not on every refresh."""
    hall_codes, hall_names = pd.factorize(np.asarray(halls, dtype=object))
    row_arr, pos = np.asarray(rows, dtype=object), np.asarray(positions, dtype=np.intp)
    names = np.asarray(racks, dtype=object)
    out = []
    for h, hall in enumerate(hall_names.tolist()):
        members = np.flatnonzero(hall_codes == h)
        row_codes, hall_rows = pd.factorize(row_arr[members])
        width = int(pos[members].max()) + 1 if len(members) else 1
        cells = row_codes * width + pos[members]
        grid = np.full(max(len(hall_rows), 1) * width, "", dtype=object)
        grid[cells] = names[members]
        out.append(_HallGrid(str(hall), tuple(hall_rows.tolist()), width, members, cells,
                             tuple(map(tuple, grid.reshape(-1, width).tolist()))))
    return tuple(out)


def _fmt_all(values: np.ndarray, unit: str) -> list[str]:
    """`_fmt` of every value of a float array, in one pass."""
    sfx = f" {unit}" if unit else ""
    out = [f"{v:.1f}{sfx}" for v in values.tolist()]
    for i in np.flatnonzero(np.isnan(values)).tolist():
        out[i] = "no data"
    return out


def _hover(racks: pd.DataFrame, spec: ColourBy, colour_by: str, values: np.ndarray) -> np.ndarray:
    """The hover text of every rack (object array, the racks frame's order)."""
    if colour_by == "alarm":
        shown = [ALARM_LABELS[int(v)] if v == v else "no data" for v in values.tolist()]
    else:
        shown = _fmt_all(values, spec.unit)
    cols = [_fmt_all(racks[c].to_numpy(np.float64), unit)
            for c, unit in (("power_kw", "kW"), ("inlet_degc", "°C"), ("hottest_degc", "°C"))]
    counts = [racks[c].to_numpy(np.int64).tolist() for c in ("accel_healthy", "accel_degraded", "accel_down",
                                                             "accel_no_data")]
    return np.asarray([
        f"<b>{rack}</b><br>{spec.label}: {s}<br>power {power}<br>inlet {inlet}"
        f"<br>hottest accel {hottest}<br>accelerators: {ok} ok, {deg} degraded, {down} down, {nod} no data"
        for rack, s, power, inlet, hottest, ok, deg, down, nod in zip(racks.index.tolist(), shown, *cols, *counts)],
        dtype=object)


def floor_figure(racks: pd.DataFrame, colour_by: str) -> dict:
    """One heatmap per hall: rows down, rack positions across, coloured by `colour_by`.

    Each cell's text is the rack name (shown in the cell while it fits, and what a click
    names); its customdata is the hover text. Built as a plain figure dict (no plotly
    validation) from arrays: this runs on every refresh of every browser. Where each rack
    sits depends on the site only and is computed once per site (`_floor_grid`).
    """
    if colour_by not in COLOUR_BY:
        raise ValueError(f"cannot colour racks by {colour_by!r} (one of {sorted(COLOUR_BY)})")
    spec = COLOUR_BY[colour_by]
    if racks.empty:
        return empty_figure("no racks in this site")
    grid = _floor_grid(tuple(racks.index.tolist()), tuple(racks["hall"].tolist()), tuple(racks["row"].tolist()),
                       tuple(racks["position"].astype(int).tolist()))
    values = racks[spec.column].to_numpy(np.float64)
    zmax = spec.zmax
    if zmax is None:
        finite = values[np.isfinite(values)]
        zmax = float(finite.max()) * 1.1 if len(finite) and finite.max() > 0 else 1.0
    hover = _hover(racks, spec, colour_by, values)
    n_rows = [max(len(g.rows), 1) for g in grid]
    gap = 0.6  # between halls, in row heights
    total = sum(n_rows) + gap * (len(grid) - 1)
    traces, layout_axes, titles = [], {}, []
    top = 1.0
    for i, g in enumerate(grid, start=1):
        shape = (n_rows[i - 1], g.width)
        z = np.full(shape[0] * g.width, np.nan)
        z[g.cells] = values[g.members]
        text = np.full(shape[0] * g.width, "", dtype=object)
        text[g.cells] = hover[g.members]
        bottom = top - n_rows[i - 1] / total
        sfx = "" if i == 1 else str(i)
        traces.append({
            "type": "heatmap", "z": _grid_list(z, shape), "x": list(range(1, g.width + 1)), "y": list(g.rows),
            "text": [list(r) for r in g.names], "customdata": text.reshape(shape).tolist(),
            "hovertemplate": "%{customdata}<extra></extra>",
            "colorscale": spec.colorscale, "zmin": spec.zmin, "zmax": zmax, "xgap": 3, "ygap": 3,
            "showscale": i == 1, "name": g.name, "xaxis": "x" + sfx, "yaxis": "y" + sfx,
            # rack names and their value in the cells while they fit (the hover always has both)
            **({"texttemplate": "%{text}" if colour_by == "alarm" else "%{text}<br>%{z:.1f}", "textfont": {"size": 10}}
               if g.width <= 16 else {}),
            "colorbar": {"title": {"text": spec.label + (f" ({spec.unit})" if spec.unit else "")}, "len": 0.9,
                         # alarm state: one named band per severity, not a continuous 0-4 scale
                         **({"tickvals": list(range(len(ALARM_LABELS))), "ticktext": list(ALARM_LABELS)}
                            if colour_by == "alarm" else {})},
        })
        layout_axes["xaxis" + sfx] = {"anchor": "y" + sfx, "domain": [0, 1], "dtick": 1,
                                      "title": {"text": "rack position"} if i == len(grid) else None}
        layout_axes["yaxis" + sfx] = {"anchor": "x" + sfx, "domain": [max(bottom, 0.0), top], "autorange": "reversed",
                                      "type": "category"}
        titles.append({"text": f"Hall {g.name}", "x": 0.5, "y": top, "xref": "paper", "yref": "paper",
                       "xanchor": "center", "yanchor": "bottom", "showarrow": False, "font": {"size": 14}})
        top = bottom - gap / total
    layout = {"height": 160 + 70 * sum(n_rows), "margin": {"l": 60, "r": 20, "t": 40, "b": 40},
              "plot_bgcolor": "#e0e0e0", "paper_bgcolor": "#ffffff", "clickmode": "event",
              "annotations": titles, "font": {"family": "system-ui, sans-serif"}, **layout_axes}
    return {"data": traces, "layout": layout}


def _iso(time_ns) -> list[str]:
    return pd.to_datetime(np.asarray(time_ns, dtype=np.int64), unit="ns", utc=True).strftime("%Y-%m-%dT%H:%M:%SZ").tolist()


def timeseries_figure(frame: pd.DataFrame, field: str, title: str, unit: str, series: str | None = None) -> dict:
    """A line per series (`series` column) of `field` over `time_ns`."""
    if frame.empty or field not in frame or frame[field].isna().all():
        return empty_figure(f"{title}: no data in this range")
    groups = frame.groupby(series) if series else [(title, frame)]
    traces = []
    for name, g in groups:
        g = g.sort_values("time_ns")
        trace = {"type": "scatter", "mode": "lines", "name": str(name), "x": _iso(g["time_ns"]),
                 "y": [None if v != v else float(v) for v in g[field]]}
        if series == "vendor" and str(name) in VENDOR_COLOURS:  # a vendor has one colour on every chart
            trace["line"] = {"color": VENDOR_COLOURS[str(name)]}
        traces.append(trace)
    return {"data": traces, "layout": _layout(
        title={"text": title, "font": {"size": 14}}, height=260, margin={"l": 50, "r": 10, "t": 40, "b": 30},
        yaxis={"title": {"text": unit}}, xaxis={"type": "date"}, showlegend=bool(series))}


VENDOR_COLOURS = {"nvidia": "#76b900", "rebellions": "#5b3cc4"}


def vendor_bars(table: pd.DataFrame, column: str, title: str, unit: str) -> dict:
    """Bars per (vendor, model) row of a fleet table."""
    if table.empty or column not in table or table[column].isna().all():
        return empty_figure(f"{title}: no data")
    ys = [None if v != v else float(v) for v in table[column]]
    models = [str(m) for m in table["model"]]
    return {"data": [{
        # the model names in full (H100 and H200 must be told apart), the vendor by its colour
        "type": "bar", "x": models, "y": ys,
        "customdata": [str(v) for v in table["vendor"]],
        "hovertemplate": "%{customdata} %{x}: %{y}<extra></extra>",
        "marker": {"color": [VENDOR_COLOURS.get(v, "#607d8b") for v in table["vendor"]]},
        "text": [_fmt(v, "") for v in table[column]], "textposition": "auto"}],
        "layout": _layout(title={"text": title, "font": {"size": 14}}, height=280,
                          margin={"l": 50, "r": 10, "t": 40, "b": 30}, yaxis={"title": {"text": unit}},
                          xaxis={"automargin": True, "tickangle": 0, "type": "category", "tickvals": models,
                                 "ticktext": [_model_tick(m) for m in models]})}


def _model_tick(model: str) -> str:
    """A model name on two lines at its first dash ("H100<br>SXM5-80GB"), so that the bars of a
    quarter-width chart keep their labels apart."""
    return "<br>".join(model.split("-", 1))


def trend_figure(frame: pd.DataFrame, field: str, title: str, unit: str) -> dict:
    """Per-vendor trend lines from a `query_range(..., group_by=["vendor"])` frame."""
    return timeseries_figure(frame, field, title, unit, series="vendor" if "vendor" in frame else None)
