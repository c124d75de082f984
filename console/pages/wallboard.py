"""Wallboard: the NOC's wall screen. No navigation (the shell hides its bar on this URL), dark,
large type, refreshed by the shell's tick, rotating between the floor and the open incidents.

`/wallboard?rotate=20` sets the seconds each view stays (default 15); `?view=floor` or
`?view=incidents` pins one view."""

from __future__ import annotations

import math

import dash
import pandas as pd
from dash import Input, Output, State, callback, dcc, html
from dash.exceptions import PreventUpdate

from dcops.console import data, data_alarms, severity
from dcops.console.figures import floor_figure

dash.register_page(__name__, path="/wallboard", name="Wallboard", title="dcops - Wallboard", order=95, nav=False,
                   min_role="viewer")

VIEWS = ("floor", "incidents")
DEFAULT_ROTATE_S = 15.0
DARK = {"backgroundColor": "#0b0f14", "color": "#e8eef5", "minHeight": "100vh", "padding": "1.5rem 2rem",
        "fontSize": "1.6rem"}


def layout(rotate: str | None = None, view: str | None = None, **_query):
    try:
        rotate_s = max(3.0, float(rotate)) if rotate else DEFAULT_ROTATE_S
    except ValueError:
        rotate_s = DEFAULT_ROTATE_S
    return html.Div([
        dcc.Store(id="wallboard-config", data={"rotate_s": rotate_s, "pin": view if view in VIEWS else None}),
        html.Div([html.Span("dcops NOC", style={"fontWeight": 700, "marginRight": "1.5rem"}),
                  html.Span(id="wallboard-view-name", style={"opacity": 0.7}),
                  html.Span(id="wallboard-clock", style={"float": "right", "opacity": 0.7})],
                 style={"fontSize": "2rem", "marginBottom": "1rem"}),
        html.Div(id="wallboard-body"),
    ], id="wallboard", style=DARK)


def view_for(tick: int, refresh_s: float, rotate_s: float, pin: str | None) -> str:
    """Which view the tick shows: each stays `rotate_s`, floor first; a pinned view stays."""
    if pin in VIEWS:
        return pin
    per_view = max(1, int(round(rotate_s / max(refresh_s, 0.1))))
    return VIEWS[(int(tick or 0) // per_view) % len(VIEWS)]


def _big(label: str, value: str, vid: str, colour: str = "#e8eef5") -> html.Div:
    return html.Div([html.Div(label, style={"fontSize": "1.2rem", "opacity": 0.7}),
                     html.Div(value, id=vid, style={"fontSize": "3.2rem", "fontWeight": 700, "color": colour})],
                    style={"flex": "1", "padding": "0.5rem 1rem", "borderLeft": "4px solid #2a3440"})


def _fmt(v, fmt="{:,.0f}") -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else fmt.format(v)


def floor_view(ctx) -> list:
    snap = data.floor_snapshot(ctx)
    totals = snap.accel_by_vendor.sum(axis=0) if not snap.accel_by_vendor.empty else pd.Series(dtype=int)
    fig = floor_figure(snap.racks, "alarm" if ctx.alarms is not None else "inlet")
    fig["layout"].update(paper_bgcolor="#0b0f14", plot_bgcolor="#1b232c", font={"color": "#e8eef5", "size": 16},
                         height=max(360, fig["layout"].get("height", 360)))
    kpis = html.Div([
        _big("IT load", f"{_fmt(snap.it_power_kw, '{:,.1f}')} kW", "wallboard-kpi-it"),
        _big("PUE", _fmt(snap.pue, "{:.2f}"), "wallboard-kpi-pue"),
        _big("Accelerators healthy", _fmt(int(totals.get("healthy", 0))), "wallboard-kpi-healthy", "#3ddc97"),
        _big("Degraded", _fmt(int(totals.get("degraded", 0))), "wallboard-kpi-degraded", severity.COLOURS["minor"]),
        _big("Down", _fmt(int(totals.get("down", 0))), "wallboard-kpi-down", severity.COLOURS["major"]),
    ], style={"display": "flex", "gap": "1rem", "marginBottom": "1rem"})
    counts = snap.incidents_by_severity or {}
    sev = html.Div([severity.badge(s, f"wallboard-open-{s}", suffix=f" {counts.get(s, 0)}")
                    for s in ("critical", "major", "minor", "warning")], style={"fontSize": "1.6rem"}) \
        if snap.incidents_by_severity is not None else html.Div()
    return [kpis, sev, dcc.Graph(id="wallboard-floor", figure=fig, config={"displayModeBar": False, "staticPlot": True})]


def incidents_view(ctx, now_s: float) -> list:
    if ctx.alarms is None:
        return [html.Div("No alarm service is connected.", id="wallboard-incidents-none")]
    rows = data_alarms.incident_table(ctx, True)
    rows.sort(key=lambda r: (-severity.rank(r["severity"]), r["opened"]))
    if not rows:
        return [html.Div("No open incidents.", id="wallboard-incidents-none",
                         style={"fontSize": "3rem", "color": severity.COLOURS["cleared"]})]
    cell = {"padding": "0.4rem 1rem", "borderBottom": "1px solid #2a3440"}
    body = []
    for r in rows[:12]:
        try:
            age_min = (now_s - pd.Timestamp(r["opened"], tz="UTC").timestamp()) / 60
            age = f"{age_min / 60:.1f} h" if age_min >= 90 else f"{max(age_min, 0):.0f} min"
        except ValueError:
            age = ""
        body.append(html.Tr([html.Td(severity.badge(r["severity"]), style=cell), html.Td(r["title"], style=cell),
                             html.Td(r["root"], style=cell), html.Td(r["state"], style=cell),
                             html.Td(age, style=cell), html.Td(r["acknowledged_by"] or "unacknowledged", style=cell)]))
    head = html.Tr([html.Th(h, style=cell) for h in ("severity", "incident", "root cause", "state", "age", "ack by")])
    return [html.Table([html.Thead(head), html.Tbody(body)], id="wallboard-incidents",
                       style={"width": "100%", "borderCollapse": "collapse"})]


def render(tick, config):
    ctx = data.current()
    if not config:
        raise PreventUpdate
    view = view_for(tick, ctx.refresh_s, float(config.get("rotate_s", DEFAULT_ROTATE_S)), config.get("pin"))
    now = ctx.clock()
    stamp = pd.Timestamp(now, unit="s", tz="UTC").strftime("%Y-%m-%d %H:%M UTC")
    body = floor_view(ctx) if view == "floor" else incidents_view(ctx, now)
    return body, "Floor" if view == "floor" else "Open incidents", stamp


callback(Output("wallboard-body", "children"), Output("wallboard-view-name", "children"),
         Output("wallboard-clock", "children"), Input("shell-tick", "data"), State("wallboard-config", "data"))(render)
