"""One rack: its servers (with their accelerators summed up), accelerators, feeds and PDUs, live.

The accelerators are rows of an AG Grid (data, sortable and filterable in the browser), not a
component per cell: a rack of 64 accelerators is 64 small dicts on every refresh."""

from __future__ import annotations

import math
from collections import Counter

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
import numpy as np
import pandas as pd
from dash import Input, Output, State, callback, dcc, html
from dash.exceptions import PreventUpdate

from dcops.console import data

dash.register_page(__name__, path_template="/rack/<rack_id>", name="Rack", title="dcops - Rack", order=90,
                   nav=False, min_role="viewer")


_BREAKER = {1.0: "closed", 0.0: "TRIPPED"}
_UP = {1.0: "up", 0.0: "DOWN"}
_STATE_STYLE = {"styleConditions": [
    {"condition": "params.value == 'degraded'", "style": {"backgroundColor": "#fff3cd"}},
    {"condition": "params.value == 'down'", "style": {"backgroundColor": "#f8d7da", "fontWeight": "600"}},
    {"condition": "params.value == 'no data'", "style": {"color": "#6c757d"}},
]}
# (field of RackView.accels, grid column): the accelerator grid, as data
ACCEL_COLUMNS = (
    ("accel_id", {"field": "link", "headerName": "accelerator", "cellRenderer": "markdown", "minWidth": 150}),
    ("device", {"field": "device", "headerName": "server"}),
    ("vendor", {"field": "vendor", "headerName": "vendor"}),
    ("model", {"field": "model", "headerName": "model", "minWidth": 150}),
    ("state", {"field": "state", "headerName": "state", "cellStyle": _STATE_STYLE}),
    ("accel_temp_degc", {"field": "temp", "headerName": "temp °C", "filter": "agNumberColumnFilter"}),
    ("accel_power_w", {"field": "power", "headerName": "power W", "filter": "agNumberColumnFilter"}),
    ("accel_util_pct", {"field": "util", "headerName": "util %", "filter": "agNumberColumnFilter"}),
)


def _num(v, unit: str = "", digits: int = 1) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:,.{digits}f} {unit}".strip()


def _table(frame: pd.DataFrame, tid: str, link_column: str | None = None) -> dbc.Table:
    """A plain table; `link_column` values link to the devices page. Text is rendered as text."""
    head = html.Thead(html.Tr([html.Th(c) for c in frame.columns]))
    body = []
    for row in zip(*(frame[c].tolist() for c in frame.columns)):
        cells = []
        for c, v in zip(frame.columns, row):
            text = _num(v) if isinstance(v, float) else str(v)
            cells.append(html.Td(dcc.Link(text, href=f"/devices?name={text}") if c == link_column else text))
        body.append(html.Tr(cells))
    return dbc.Table([head, html.Tbody(body)], size="sm", striped=True, hover=True, id=tid)


def layout(rack_id: str | None = None, **_query):
    return html.Div([
        dcc.Store(id="rack-name", data=rack_id),
        dcc.Link("← floor", href="/"),
        html.H3(f"Rack {rack_id}", id="rack-title"),
        html.Div(id="rack-body"),
        dag.AgGrid(id="rack-accels", columnDefs=[col for _, col in ACCEL_COLUMNS], rowData=[],
                   getRowId="params.data.id", columnSize="responsiveSizeToFit",
                   defaultColDef={"sortable": True, "resizable": True, "filter": True},
                   dashGridOptions={"animateRows": False, "domLayout": "autoHeight"}),
    ])


def _accel_summary(accels: pd.DataFrame) -> dict[str, str]:
    """Per server, its accelerators by state ("8 healthy", "6 healthy, 1 degraded, 1 down")."""
    counts = Counter(zip(accels["device"].tolist(), accels["state"].tolist()))
    out: dict[str, list[str]] = {}
    for state in data.ACCEL_STATES:
        for (device, s), n in counts.items():
            if s == state:
                out.setdefault(device, []).append(f"{n} {state}")
    return {device: ", ".join(parts) for device, parts in out.items()}


def accel_rows(view: data.RackView) -> list[dict]:
    """The accelerator grid's rows: one small dict per accelerator, numbers rounded for display
    (None where there is no data), the id linking to the devices page."""
    cols = {}
    for field, col in ACCEL_COLUMNS:
        values = view.accels[field]
        if values.dtype.kind == "f":
            arr = np.round(values.to_numpy(np.float64), 1).astype(object)
            arr[values.isna().to_numpy()] = None
            cols[col["field"]] = arr.tolist()
        else:
            cols[col["field"]] = [str(v) for v in values.tolist()]
    ids = [str(v) for v in view.accels["accel_id"].tolist()]
    cols["link"] = [f"[{a}](/devices?name={a})" for a in ids]
    cols["id"] = ids
    names = list(cols)
    return [dict(zip(names, row)) for row in zip(*cols.values())]


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
    by_server = _accel_summary(view.accels)
    servers = view.servers.assign(up=view.servers["up"].map(_UP).fillna("no data"),
                                  accelerators=[by_server.get(d, "none") for d in view.servers["device"].tolist()])
    servers = servers.rename(columns={"power_w": "power W", "inlet_degc": "inlet °C", "psu_ok": "PSUs ok"})
    return [
        summary,
        html.H5("Feeds and PDUs"), html.Div(f"Feeds: {feeds}", className="small text-muted"),
        _table(pdus, "rack-pdus", link_column="name"),
        html.H5("Servers"), _table(servers, "rack-servers", link_column="device"),
        html.H5(f"Accelerators ({len(view.accels)})", id="rack-accels-title"),
    ]


def update_rack(_n_intervals, rack_id):
    """The rack's summary, PDUs and servers (components) and its accelerators (grid rows)."""
    if not rack_id:
        raise PreventUpdate
    try:
        view = data.rack_view(data.current(), rack_id)
    except KeyError as e:
        return dbc.Alert(str(e.args[0]), color="warning", id="rack-missing"), []
    return rack_body(view), accel_rows(view)


callback(Output("rack-body", "children"), Output("rack-accels", "rowData"),
         Input("shell-tick", "data"), State("rack-name", "data"))(update_rack)
