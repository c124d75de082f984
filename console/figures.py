"""Pure figure builders: data in, Plotly figure (as a plain dict) out. No store, no Flask, no Dash.

Figures are built as dicts rather than plotly.graph_objects: they are rebuilt on every refresh
of every browser, and graph_objects validation and templates cost more than the data read.
Tests check them with `plotly.graph_objects.Figure(fig)`."""

from __future__ import annotations

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


def _nan_to_none(z: np.ndarray) -> list:
    return [[None if v != v else float(v) for v in row] for row in z]


def floor_figure(racks: pd.DataFrame, colour_by: str) -> dict:
    """One heatmap per hall: rows down, rack positions across, coloured by `colour_by`.

    Each cell's text is the rack name (shown in the cell while it fits, and what a click
    names); its customdata is the hover text. Built as a
    plain figure dict (no plotly validation): this runs on every refresh of every browser.
    """
    if colour_by not in COLOUR_BY:
        raise ValueError(f"cannot colour racks by {colour_by!r} (one of {sorted(COLOUR_BY)})")
    spec = COLOUR_BY[colour_by]
    if racks.empty:
        return empty_figure("no racks in this site")
    halls = list(dict.fromkeys(racks["hall"]))
    values = racks[spec.column].astype(float)
    zmax = spec.zmax
    if zmax is None:
        finite = values[np.isfinite(values)]
        zmax = float(finite.max()) * 1.1 if len(finite) and finite.max() > 0 else 1.0
    n_rows = [max(racks.loc[racks["hall"] == h, "row"].nunique(), 1) for h in halls]
    gap = 0.6  # between halls, in row heights
    total = sum(n_rows) + gap * (len(halls) - 1)
    traces, layout_axes, titles = [], {}, []
    top = 1.0
    for i, hall in enumerate(halls, start=1):
        hr = racks[racks["hall"] == hall]
        rows = list(dict.fromkeys(hr["row"]))
        width = int(hr["position"].max()) + 1
        z = np.full((len(rows), width), np.nan)
        names = np.full((len(rows), width), "", dtype=object)
        text = np.full((len(rows), width), "", dtype=object)
        row_idx = {r: k for k, r in enumerate(rows)}
        for rack, hall_, row, pos, v, power, inlet, hottest, ok, deg, down, nod in zip(
                hr.index, hr["hall"], hr["row"], hr["position"], hr[spec.column].astype(float), hr["power_kw"],
                hr["inlet_degc"], hr["hottest_degc"], hr["accel_healthy"], hr["accel_degraded"], hr["accel_down"],
                hr["accel_no_data"]):
            y, x = row_idx[row], int(pos)
            z[y, x] = v
            names[y, x] = rack
            shown = ALARM_LABELS[int(v)] if colour_by == "alarm" and v == v else _fmt(v, spec.unit)
            text[y, x] = (f"<b>{rack}</b><br>{spec.label}: {shown}<br>power {_fmt(power, 'kW')}"
                          f"<br>inlet {_fmt(inlet, '°C')}<br>hottest accel {_fmt(hottest, '°C')}"
                          f"<br>accelerators: {int(ok)} ok, {int(deg)} degraded, {int(down)} down, {int(nod)} no data")
        bottom = top - n_rows[i - 1] / total
        sfx = "" if i == 1 else str(i)
        traces.append({
            "type": "heatmap", "z": _nan_to_none(z), "x": list(range(1, width + 1)), "y": rows,
            "text": names.tolist(), "customdata": text.tolist(), "hovertemplate": "%{customdata}<extra></extra>",
            "colorscale": spec.colorscale, "zmin": spec.zmin, "zmax": zmax, "xgap": 3, "ygap": 3,
            "showscale": i == 1, "name": hall, "xaxis": "x" + sfx, "yaxis": "y" + sfx,
            # rack names in the cells while they fit
            # rack names and their value in the cells while they fit (the hover always has both)
            **({"texttemplate": "%{text}" if colour_by == "alarm" else "%{text}<br>%{z:.1f}", "textfont": {"size": 10}}
               if width <= 16 else {}),
            "colorbar": {"title": {"text": spec.label + (f" ({spec.unit})" if spec.unit else "")}, "len": 0.9,
                         # alarm state: one named band per severity, not a continuous 0-4 scale
                         **({"tickvals": list(range(len(ALARM_LABELS))), "ticktext": list(ALARM_LABELS)}
                            if colour_by == "alarm" else {})},
        })
        layout_axes["xaxis" + sfx] = {"anchor": "y" + sfx, "domain": [0, 1], "dtick": 1,
                                      "title": {"text": "rack position"} if i == len(halls) else None}
        layout_axes["yaxis" + sfx] = {"anchor": "x" + sfx, "domain": [max(bottom, 0.0), top], "autorange": "reversed",
                                      "type": "category"}
        titles.append({"text": f"Hall {hall}", "x": 0.5, "y": top, "xref": "paper", "yref": "paper",
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
    return {"data": [{
        # the model names in full (H100 and H200 must be told apart), the vendor by its colour
        "type": "bar", "x": [str(m) for m in table["model"]], "y": ys,
        "customdata": [str(v) for v in table["vendor"]],
        "hovertemplate": "%{customdata} %{x}: %{y}<extra></extra>",
        "marker": {"color": [VENDOR_COLOURS.get(v, "#607d8b") for v in table["vendor"]]},
        "text": [_fmt(v, "") for v in table[column]], "textposition": "auto"}],
        "layout": _layout(title={"text": title, "font": {"size": 14}}, height=280,
                          margin={"l": 50, "r": 10, "t": 40, "b": 30}, yaxis={"title": {"text": unit}},
                          xaxis={"automargin": True, "tickangle": 0, "type": "category"})}


def trend_figure(frame: pd.DataFrame, field: str, title: str, unit: str) -> dict:
    """Per-vendor trend lines from a `query_range(..., group_by=["vendor"])` frame."""
    return timeseries_figure(frame, field, title, unit, series="vendor" if "vendor" in frame else None)
