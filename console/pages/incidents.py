"""Incidents: the list (open first), each linking to its detail page."""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, callback, dcc, html
from dash.exceptions import PreventUpdate

from dcops.console import data, data_alarms

dash.register_page(__name__, path="/incidents", name="Incidents", title="dcops - Incidents", order=20,
                   min_role="viewer", needs_alarms=True)

HEADERS = ("incident", "title", "state", "severity", "opened (UTC)", "root cause", "alarms", "ack by")


def layout(**_query):
    if data.current().alarms is None:
        return dbc.Alert("No alarm service is connected to this console.", color="secondary", id="incidents-none")
    return html.Div([
        html.H3("Incidents"),
        dbc.Checkbox(id="incidents-open-only", value=True, label="open incidents only"),
        html.Div(id="incidents-list"),
    ])


def incidents_list(_n_intervals, open_only):
    ctx = data.current()
    if ctx.alarms is None:
        raise PreventUpdate
    rows = data_alarms.incident_table(ctx, bool(open_only))
    if not rows:
        return html.Div("No incidents.", className="text-muted", id="incidents-empty")
    body = [html.Tr([html.Td(dcc.Link(r["id"], href=f"/incident/{r['id']}")), html.Td(r["title"]), html.Td(r["state"]),
                     html.Td(r["severity"]), html.Td(r["opened"]), html.Td(r["root"]), html.Td(r["alarms"]),
                     html.Td(r["acknowledged_by"])]) for r in rows]
    return dbc.Table([html.Thead(html.Tr([html.Th(h) for h in HEADERS])), html.Tbody(body)], size="sm",
                     striped=True, hover=True, id="incidents-table")


callback(Output("incidents-list", "children"), Input("shell-tick", "data"),
         Input("incidents-open-only", "value"))(incidents_list)
