"""Floor: halls, rows and racks coloured by the operator's choice, with the site's KPIs."""

from __future__ import annotations

import math

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, callback, dcc, html
from dash.exceptions import PreventUpdate

from dcops.console import data, severity
from dcops.console.figures import COLOUR_BY, floor_figure

dash.register_page(__name__, path="/", name="Floor", title="dcops - Floor", order=0, min_role="viewer")


def _kpi(label: str, value: str, kid: str, colour: str = "primary") -> dbc.Col:
    return dbc.Col(dbc.Card(dbc.CardBody([
        html.Div(label, className="text-muted small"),
        html.H4(value, id=kid, className=f"text-{colour} mb-0"),
    ])), md=2, sm=4)


def _fmt(v, fmt: str = "{:,.1f}") -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else fmt.format(v)


def kpi_cards(snap: data.FloorSnapshot) -> list:
    """The KPI row: IT load, facility power, PUE, accelerators by state, incidents by severity."""
    totals = snap.accel_by_vendor.sum(axis=0) if not snap.accel_by_vendor.empty else pd.Series(dtype=int)
    cards = [
        _kpi("IT load", f"{_fmt(snap.it_power_kw)} kW", "floor-kpi-it"),
        _kpi("Facility power", f"{_fmt(snap.facility_power_kw)} kW", "floor-kpi-facility", "secondary"),
        _kpi("PUE", _fmt(snap.pue, "{:.2f}"), "floor-kpi-pue", "secondary"),
        _kpi("Accelerators healthy", f"{int(totals.get('healthy', 0)):,}", "floor-kpi-healthy", "success"),
        _kpi("Degraded", f"{int(totals.get('degraded', 0)):,}", "floor-kpi-degraded", "warning"),
        _kpi("Down / no data", f"{int(totals.get('down', 0)):,} / {int(totals.get('no data', 0)):,}",
             "floor-kpi-down", "danger"),
    ]
    return cards


def vendor_table(snap: data.FloorSnapshot) -> dbc.Table:
    frame = snap.accel_by_vendor.astype(int).reset_index().rename(columns={"index": "vendor"})
    frame.columns = ["vendor", *data.ACCEL_STATES]
    return dbc.Table.from_dataframe(frame, striped=True, bordered=False, size="sm", id="floor-vendors")


def incidents_badges(snap: data.FloorSnapshot) -> list:
    """Open incidents by severity, in the console's one severity palette."""
    if snap.incidents_by_severity is None:
        return []
    items = [html.Span("Open incidents: ", className="me-2")]
    for sev in ("critical", "major", "minor", "warning"):
        items.append(severity.badge(sev, f"floor-incidents-{sev}", suffix=f" {snap.incidents_by_severity.get(sev, 0)}"))
    return items


def layout(**_query):
    ctx = data.current()
    options = [{"label": spec.label, "value": key} for key, spec in COLOUR_BY.items()
               if key != "alarm" or ctx.alarms is not None]
    return html.Div([
        dcc.Location(id="floor-nav", refresh="callback-nav"),
        dbc.Row(id="floor-kpis", className="g-2 mb-2"),
        html.Div(id="floor-incidents", className="mb-2"),
        dbc.Row([
            dbc.Col([
                html.Div([html.Span("Colour racks by: ", className="me-2"),
                          dbc.RadioItems(id="floor-colour-by", options=options, value="inlet", inline=True)],
                         className="d-flex align-items-center"),
                dcc.Graph(id="floor-map", config={"displayModeBar": False}),
                html.Div("Click a rack to open it.", className="text-muted small"),
            ], lg=9),
            dbc.Col([html.H6("Accelerators by vendor"), html.Div(id="floor-vendor-table"),
                     html.Div(id="floor-updated", className="text-muted small")], lg=3),
        ]),
    ])


def update_floor(_n_intervals, colour_by):
    """Refresh the map and KPIs (shell-tick drives it; one store read per tick, shared)."""
    if colour_by not in COLOUR_BY:
        raise PreventUpdate
    snap = data.floor_snapshot(data.current())
    stamp = (pd.Timestamp(snap.time_ns, unit="ns", tz="UTC").strftime("data at %Y-%m-%d %H:%M:%S UTC")
             if snap.time_ns else "no data yet")
    return (floor_figure(snap.racks, colour_by), kpi_cards(snap), vendor_table(snap), incidents_badges(snap), stamp)


def open_rack(click_data):
    """A click on a rack cell navigates to its rack view."""
    try:
        rack = click_data["points"][0]["text"]
    except (TypeError, KeyError, IndexError):
        raise PreventUpdate from None
    if not rack or rack not in data.current().inventory:
        raise PreventUpdate
    return f"/rack/{rack}"


callback(
    Output("floor-map", "figure"), Output("floor-kpis", "children"), Output("floor-vendor-table", "children"),
    Output("floor-incidents", "children"), Output("floor-updated", "children"),
    Input("shell-tick", "data"), Input("floor-colour-by", "value"),
)(update_floor)
callback(Output("floor-nav", "href"), Input("floor-map", "clickData"), prevent_initial_call=True)(open_rack)
