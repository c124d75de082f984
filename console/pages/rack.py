"""One rack: its servers, accelerators, feeds and PDUs, live."""

from __future__ import annotations

import math

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, State, callback, dcc, html
from dash.exceptions import PreventUpdate

from dcops.console import data

dash.register_page(__name__, path_template="/rack/<rack_id>", name="Rack", title="dcops - Rack", order=90,
                   nav=False, min_role="viewer")


_BREAKER = {1.0: "closed", 0.0: "TRIPPED"}
_UP = {1.0: "up", 0.0: "DOWN"}


def _num(v, unit: str = "", digits: int = 1) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:,.{digits}f} {unit}".strip()


def _table(frame: pd.DataFrame, tid: str, link_column: str | None = None) -> dbc.Table:
    """A plain table; `link_column` values link to the devices page. Text is rendered as text."""
    head = html.Thead(html.Tr([html.Th(c) for c in frame.columns]))
    body = []
    for _, row in frame.iterrows():
        cells = []
        for c in frame.columns:
            v = row[c]
            text = _num(v) if isinstance(v, float) else str(v)
            if c == link_column:
                cells.append(html.Td(dcc.Link(text, href=f"/devices?name={text}")))
            else:
                cells.append(html.Td(text))
        body.append(html.Tr(cells))
    return dbc.Table([head, html.Tbody(body)], size="sm", striped=True, hover=True, id=tid)


def layout(rack_id: str | None = None, **_query):
    return html.Div([
        dcc.Store(id="rack-name", data=rack_id),
        dcc.Link("← floor", href="/"),
        html.H3(f"Rack {rack_id}", id="rack-title"),
        html.Div(id="rack-body"),
    ])


def rack_body(view: data.RackView) -> list:
    rv = view.rack_values
    summary = dbc.Row([
        dbc.Col(html.Div([html.Div("Power", className="text-muted small"),
                          html.H5(_num(rv["rack_power_w"] / 1e3, "kW"), id="rack-power")])),
        dbc.Col(html.Div([html.Div("Feed A / B", className="text-muted small"),
                          html.H5(f"{_num(rv['rack_feed_a_power_w'] / 1e3, 'kW')} / "
                                  f"{_num(rv['rack_feed_b_power_w'] / 1e3, 'kW')}")])),
        dbc.Col(html.Div([html.Div("Inlet / outlet", className="text-muted small"),
                          html.H5(f"{_num(rv['rack_inlet_temp_degc'], '°C')} / "
                                  f"{_num(rv['rack_outlet_temp_degc'], '°C')}", id="rack-inlet")])),
        dbc.Col(html.Div([html.Div("Place", className="text-muted small"),
                          html.H5(f"hall {view.hall}, row {view.row}")])),
    ], className="mb-3")
    feeds = ", ".join(f"{k}: {v}" for k, v in sorted(view.feeds.items())) or "none"
    pdus = view.pdus.assign(breaker_closed=view.pdus["breaker_closed"].map(_BREAKER).fillna("–")).rename(
        columns={"power_kw": "power kW", "load_pct": "load %", "breaker_closed": "breaker"})
    servers = view.servers.assign(up=view.servers["up"].map(_UP).fillna("no data")).rename(
        columns={"power_w": "power W", "inlet_degc": "inlet °C", "psu_ok": "PSUs ok"})
    accels = view.accels.rename(columns={"accel_temp_degc": "temp °C", "accel_power_w": "power W",
                                         "accel_util_pct": "util %", "accel_id": "accelerator"})
    return [
        summary,
        html.H5("Feeds and PDUs"), html.Div(f"Feeds: {feeds}", className="small text-muted"),
        _table(pdus, "rack-pdus", link_column="name"),
        html.H5("Servers"), _table(servers, "rack-servers", link_column="device"),
        html.H5(f"Accelerators ({len(accels)})"), _table(accels, "rack-accels", link_column="accelerator"),
    ]


def update_rack(_n_intervals, rack_id):
    if not rack_id:
        raise PreventUpdate
    try:
        view = data.rack_view(data.current(), rack_id)
    except KeyError as e:
        return dbc.Alert(str(e.args[0]), color="warning", id="rack-missing")
    return rack_body(view)


callback(Output("rack-body", "children"), Input("shell-tick", "data"), State("rack-name", "data"))(update_rack)
