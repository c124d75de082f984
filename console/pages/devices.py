"""Devices: the site as a searchable tree (hall > row > rack > server > accelerator, facility
devices by kind), a grid of the selected component's contents, and the panels the device
reports over a range, with its events and alarms. The selection is the URL (`?name=`)."""

from __future__ import annotations

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, callback, dcc, html

from dcops.console import data, data_devices, data_series
from dcops.console.figures import timeseries_figure

dash.register_page(__name__, path="/devices", name="Devices", title="dcops - Devices", order=30, min_role="viewer")

NS = 1_000_000_000
# worst state first (down, degraded, no data, healthy), then by name
GRID_COLUMNS = [
    {"field": "state_rank", "hide": True, "sort": "asc", "sortIndex": 0},
    {"field": "link", "headerName": "device", "cellRenderer": "markdown", "width": 170, "sort": "asc",
     "sortIndex": 1},
    {"field": "kind", "width": 110},
    {"field": "vendor", "width": 110},
    {"field": "model", "width": 170},
    {"field": "state", "width": 110},
    {"field": "temp_degc", "headerName": "temp (°C)", "width": 105, "filter": "agNumberColumnFilter"},
    {"field": "power_w", "headerName": "power (W)", "width": 110, "filter": "agNumberColumnFilter"},
    {"field": "path", "flex": 1, "minWidth": 220, "tooltipField": "path"},
]


def layout(name: str | None = None, **_query):
    name = name if name and name in data.current().inventory else None
    return html.Div([
        dcc.Store(id="devices-selected", data=name),
        dbc.Row([
            dbc.Col(dbc.Input(id="devices-search", type="search", debounce=True,
                              placeholder="Search a device, accelerator, rack, PDU, UPS or cooling unit..."), lg=4),
            dbc.Col(dbc.RadioItems(id="devices-range", options=[{"label": k, "value": k} for k in data_series.RANGES],
                                   value="1h", inline=True), lg=5),
        ], className="mb-3"),
        dbc.Row([
            dbc.Col(html.Div(id="devices-tree", className="devices-tree",
                             style={"maxHeight": "80vh", "overflowY": "auto", "fontSize": "0.9rem"}), lg=3),
            dbc.Col([
                html.Div(id="devices-title"),
                dbc.Row(id="devices-charts"),
                dag.AgGrid(id="devices-grid", columnDefs=GRID_COLUMNS, rowData=[], getRowId="params.data.name",
                           defaultColDef={"sortable": True, "resizable": True, "filter": True},
                           dashGridOptions={"animateRows": False, "tooltipShowDelay": 300},
                           style={"height": "40vh"}, className="mb-3"),
                html.H5("Events"),
                html.Div(id="devices-events"),
                html.H5("Alarms and anomaly findings") if data.current().alarms is not None else None,
                html.Div(id="devices-alarms"),
            ], lg=9),
        ]),
    ])


def _tree_item(node: data_devices.TreeNode, selected: str | None) -> html.Li:
    css = "devices-node devices-selected fw-bold" if node.name and node.name == selected else "devices-node"
    link = (dcc.Link(node.label, href=f"/devices?name={node.name}", className=css)
            if node.name else html.Span(node.label, className="fw-semibold"))
    if not node.children:
        return html.Li(link)
    return html.Li(html.Details([html.Summary(link), _tree_list(node.children, selected)], open=node.open))


def _tree_list(nodes, selected: str | None) -> html.Ul:
    return html.Ul([_tree_item(n, selected) for n in nodes], className="list-unstyled ps-3 mb-0")


def show_tree(text, selected):
    """The tree: matches of the search opened, else the selected device's branch (the selected
    device in bold)."""
    nodes = data_devices.device_tree(data.current(), text, selected)
    if not nodes:
        return html.Div("Nothing matches.", className="text-muted", id="devices-tree-none")
    return _tree_list(nodes, selected)


def grid_rows(text, selected, _tick) -> list[dict]:
    """The grid: matches of the search, else the selected component's contents."""
    return data_devices.device_grid(data.current(), selected, text)


def events_table(events) -> html.Div:
    if not events:
        return html.Div("No events in this range.", className="text-muted", id="devices-events-none")
    rows = [html.Tr([html.Td(pd.Timestamp(e.time_ns, unit="ns", tz="UTC").strftime("%Y-%m-%d %H:%M:%S")),
                     html.Td(e.kind), html.Td(e.severity), html.Td(e.source), html.Td(e.message)]) for e in events]
    head = html.Thead(html.Tr([html.Th(c) for c in ("time (UTC)", "kind", "severity", "source", "message")]))
    return dbc.Table([head, html.Tbody(rows)], size="sm", striped=True, id="devices-events-table")


def alarms_table(ctx, comp) -> html.Div:
    """Listed alarms on the component or anything inside it, anomaly findings (with the
    detector's explanation) included."""
    if ctx.alarms is None:
        return html.Div()
    alarms = ctx.alarms.list_alarms(component=comp.path(ctx.inventory.site))
    alarms += [a for a in ctx.alarms.list_alarms(component=comp.name) if a.id not in {b.id for b in alarms}]
    if not alarms:
        return html.Div("No alarms.", className="text-muted", id="devices-alarms-none")
    rows = [html.Tr([html.Td(pd.Timestamp(a.raised_ns, unit="ns", tz="UTC").strftime("%Y-%m-%d %H:%M:%S")),
                     html.Td(getattr(a.severity, "value", a.severity)), html.Td(a.component),
                     html.Td(a.specific_problem), html.Td(a.additional_text),
                     html.Td("active" if a.active else "cleared")]) for a in alarms]
    head = html.Thead(html.Tr([html.Th(c) for c in ("raised (UTC)", "severity", "component", "problem",
                                                   "details / explanation", "state")]))
    return dbc.Table([head, html.Tbody(rows)], size="sm", striped=True, id="devices-alarms-table")


def show_device(name, range_key, _n_intervals):
    """Panels of what the chosen component reports over the range, its events and alarms."""
    if not name:
        return html.Div("Pick a component in the tree or the grid.", className="text-muted"), [], [], html.Div()
    ctx = data.current()
    try:
        if range_key not in data_series.RANGES:
            raise KeyError(f"unknown range {range_key!r} (one of {list(data_series.RANGES)})")
        comp = ctx.inventory.get(name)
        end = data_series.data_now_ns(ctx) + 1
        panels, frame = ((), None)
        if comp.kind in data_series.DEVICE_CHARTS:  # halls and rows: their contents, events and alarms only
            panels, frame = data_devices.panel_series(ctx, name, end - data_series.RANGES[range_key] * NS, end)
        events = data_series.device_events(ctx, name, range_key)
    except KeyError as e:
        return dbc.Alert(str(e.args[0]), color="warning", id="devices-error"), [], [], html.Div()
    charts = [dbc.Col(dcc.Graph(figure=timeseries_figure(frame, p.field, p.title, p.unit),
                                config={"displayModeBar": False}, id=f"devices-chart-{p.field}"), lg=6)
              for p in panels]
    what = f"{comp.attrs.get('vendor', '')} {comp.attrs.get('model', '')}".strip()
    title = html.H4(f"{comp.name} — {comp.kind}{', ' + what if what else ''}, {comp.path(ctx.inventory.site)}",
                    id="devices-name")
    return title, charts, events_table(events), alarms_table(ctx, comp)


callback(Output("devices-tree", "children"), Input("devices-search", "value"), Input("devices-selected", "data"))(
    show_tree)
callback(Output("devices-grid", "rowData"), Input("devices-search", "value"), Input("devices-selected", "data"),
         Input("shell-tick", "data"))(grid_rows)
callback(Output("devices-title", "children"), Output("devices-charts", "children"),
         Output("devices-events", "children"), Output("devices-alarms", "children"),
         Input("devices-selected", "data"), Input("devices-range", "value"), Input("shell-tick", "data"))(show_device)
