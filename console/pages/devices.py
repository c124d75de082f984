"""Devices: find any device or accelerator; its metrics over a range and its events."""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, State, callback, dcc, html
from dash.exceptions import PreventUpdate

from dcops.console import data, data_series
from dcops.console.figures import timeseries_figure

dash.register_page(__name__, path="/devices", name="Devices", title="dcops - Devices", order=30, min_role="viewer")


def _option(comp, site: str) -> dict:
    return {"label": f"{comp.name} ({comp.kind}) {comp.path(site)}", "value": comp.name}


def layout(name: str | None = None, **_query):
    ctx = data.current()
    options = [_option(ctx.inventory.get(name), ctx.inventory.site)] if name and name in ctx.inventory else []
    return html.Div([
        dbc.Row([
            dbc.Col(dcc.Dropdown(id="devices-pick", options=options, value=name if options else None,
                                 placeholder="Type a device, accelerator, rack, PDU, UPS or cooling unit...",
                                 searchable=True, clearable=True), lg=7),
            dbc.Col(dbc.RadioItems(id="devices-range", options=[{"label": k, "value": k} for k in data_series.RANGES],
                                   value="1h", inline=True), lg=5),
        ], className="mb-3"),
        html.Div(id="devices-title"),
        dbc.Row(id="devices-charts"),
        html.H5("Events"),
        html.Div(id="devices-events"),
        html.H5("Alarms and anomaly findings") if ctx.alarms is not None else None,
        html.Div(id="devices-alarms"),
    ])


def search_options(search_value, current):
    """Options for what the operator types (at most 50), keeping the current choice listed."""
    if not search_value:
        raise PreventUpdate
    ctx = data.current()
    found = data_series.search(ctx, search_value)
    opts = [_option(c, ctx.inventory.site) for c in found]
    if current and current in ctx.inventory and all(o["value"] != current for o in opts):
        opts.insert(0, _option(ctx.inventory.get(current), ctx.inventory.site))
    return opts


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
    """Charts of the chosen component's metrics over the range, its events and alarms."""
    if not name:
        return html.Div("Pick a component.", className="text-muted"), [], [], html.Div()
    ctx = data.current()
    try:
        spec, frame = data_series.device_series(ctx, name, range_key)
        events = data_series.device_events(ctx, name, range_key)
    except KeyError as e:
        return dbc.Alert(str(e.args[0]), color="warning", id="devices-error"), [], [], html.Div()
    comp = ctx.inventory.get(name)
    charts = [dbc.Col(dcc.Graph(figure=timeseries_figure(frame, f, f, data_series.unit_of(f)),
                                config={"displayModeBar": False}, id=f"devices-chart-{f}"), lg=6)
              for f in spec.fields]
    title = html.H4(f"{comp.name} — {comp.kind}, {comp.path(ctx.inventory.site)}", id="devices-name")
    return title, charts, events_table(events), alarms_table(ctx, comp)


callback(Output("devices-pick", "options"), Input("devices-pick", "search_value"),
         State("devices-pick", "value"))(search_options)
callback(Output("devices-title", "children"), Output("devices-charts", "children"),
         Output("devices-events", "children"), Output("devices-alarms", "children"), Input("devices-pick", "value"), Input("devices-range", "value"),
         Input("shell-tick", "data"))(show_device)
