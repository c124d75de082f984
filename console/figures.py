"""Pure figure builders: data in, Plotly figure out. No store, no Flask, no Dash callbacks."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

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


_ALARM_SCALE = [[0.0, "#2e7d32"], [0.125, "#2e7d32"], [0.125, "#fbc02d"], [0.375, "#fbc02d"],
                [0.375, "#f57c00"], [0.625, "#f57c00"], [0.625, "#e64a19"], [0.875, "#e64a19"],
                [0.875, "#b71c1c"], [1.0, "#b71c1c"]]

# What the operator can colour racks by; the floor page's radio buttons list these keys.
COLOUR_BY: dict[str, ColourBy] = {
    "inlet": ColourBy("Inlet temperature", "inlet_degc", "°C", "RdYlBu_r", 18.0, 35.0),
    "power": ColourBy("Rack power", "power_kw", "kW", "Viridis", 0.0, None),
    "hottest": ColourBy("Hottest accelerator", "hottest_degc", "°C", "RdYlBu_r", 30.0, 95.0),
    "alarm": ColourBy("Alarm state", "alarm_rank", "", _ALARM_SCALE, 0.0, 4.0),
}
ALARM_LABELS = ("none", "warning", "minor", "major", "critical")


def _fmt(v: float, unit: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "no data"
    return f"{v:.1f} {unit}".strip()


def empty_figure(message: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                       font={"size": 14, "color": "#888"})
    fig.update_layout(xaxis={"visible": False}, yaxis={"visible": False}, height=200,
                      margin={"l": 10, "r": 10, "t": 10, "b": 10}, template="plotly_white")
    return fig


def floor_figure(racks: pd.DataFrame, colour_by: str) -> go.Figure:
    """One heatmap per hall: rows down, rack positions across, coloured by `colour_by`.

    Each cell's customdata is the rack name, so a click names the rack to open.
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
    n_rows = [racks.loc[racks["hall"] == h, "row"].nunique() for h in halls]
    fig = make_subplots(rows=len(halls), cols=1, subplot_titles=[f"Hall {h}" for h in halls],
                        row_heights=[max(n, 1) for n in n_rows], vertical_spacing=0.12 if len(halls) > 1 else 0.05)
    for i, hall in enumerate(halls, start=1):
        hr = racks[racks["hall"] == hall]
        rows = list(dict.fromkeys(hr["row"]))
        width = int(hr["position"].max()) + 1
        z = np.full((len(rows), width), np.nan)
        names = np.full((len(rows), width), "", dtype=object)
        text = np.full((len(rows), width), "", dtype=object)
        for rack, r in hr.iterrows():
            y, x = rows.index(r["row"]), int(r["position"])
            v = float(r[spec.column])
            z[y, x] = v
            names[y, x] = rack
            shown = ALARM_LABELS[int(v)] if colour_by == "alarm" and v == v else _fmt(v, spec.unit)
            text[y, x] = (f"<b>{rack}</b><br>{spec.label}: {shown}<br>power {_fmt(r['power_kw'], 'kW')}"
                          f"<br>inlet {_fmt(r['inlet_degc'], '°C')}<br>hottest accel {_fmt(r['hottest_degc'], '°C')}"
                          f"<br>accelerators: {int(r['accel_healthy'])} ok, {int(r['accel_degraded'])} degraded,"
                          f" {int(r['accel_down'])} down, {int(r['accel_no_data'])} no data")
        fig.add_trace(go.Heatmap(
            z=z, x=list(range(1, width + 1)), y=rows, customdata=names, text=text, hoverinfo="text",
            hovertemplate="%{text}<extra></extra>", colorscale=spec.colorscale, zmin=spec.zmin, zmax=zmax,
            xgap=3, ygap=3, showscale=(i == 1), name=hall,
            colorbar={"title": {"text": f"{spec.label}" + (f" ({spec.unit})" if spec.unit else "")}, "len": 0.9},
        ), row=i, col=1)
        fig.update_yaxes(autorange="reversed", row=i, col=1)
        fig.update_xaxes(title_text="rack position", dtick=1, row=i, col=1)
    fig.update_layout(height=160 + 70 * sum(max(n, 1) for n in n_rows), margin={"l": 60, "r": 20, "t": 40, "b": 40},
                      template="plotly_white", plot_bgcolor="#e0e0e0", clickmode="event")
    return fig


def timeseries_figure(frame: pd.DataFrame, field: str, title: str, unit: str, series: str | None = None) -> go.Figure:
    """A line per series (`series` column) of `field` over `time_ns`."""
    if frame.empty or field not in frame or frame[field].isna().all():
        return empty_figure(f"{title}: no data in this range")
    fig = go.Figure()
    groups = frame.groupby(series) if series else [(title, frame)]
    for name, g in groups:
        g = g.sort_values("time_ns")
        fig.add_trace(go.Scatter(x=pd.to_datetime(g["time_ns"], unit="ns", utc=True), y=g[field],
                                 mode="lines", name=str(name)))
    fig.update_layout(title={"text": title, "font": {"size": 14}}, height=260, template="plotly_white",
                      margin={"l": 50, "r": 10, "t": 40, "b": 30}, yaxis_title=unit, showlegend=bool(series))
    return fig


def vendor_bars(table: pd.DataFrame, column: str, title: str, unit: str) -> go.Figure:
    """Bars per (vendor, model) row of a fleet table."""
    if table.empty or column not in table or table[column].isna().all():
        return empty_figure(f"{title}: no data")
    colours = {"nvidia": "#76b900", "rebellions": "#5b3cc4"}
    fig = go.Figure(go.Bar(
        x=[f"{v} {m}" for v, m in zip(table["vendor"], table["model"])], y=table[column],
        marker_color=[colours.get(v, "#607d8b") for v in table["vendor"]],
        text=[_fmt(v, "") for v in table[column]], textposition="auto"))
    fig.update_layout(title={"text": title, "font": {"size": 14}}, height=260, template="plotly_white",
                      margin={"l": 50, "r": 10, "t": 40, "b": 30}, yaxis_title=unit)
    return fig


def trend_figure(frame: pd.DataFrame, field: str, title: str, unit: str) -> go.Figure:
    """Per-vendor trend lines from a `query_range(..., group_by=["vendor"])` frame."""
    return timeseries_figure(frame, field, title, unit, series="vendor" if "vendor" in frame else None)
