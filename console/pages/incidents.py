"""Incidents: the list (AG Grid: most severe and newest first, sortable and filterable), each
row opening its detail page; operators acknowledge the selected incidents from the list."""

from __future__ import annotations

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import Input, Output, State, callback, html
from dash.exceptions import PreventUpdate

from dcops.console import data, data_alarms, severity
from dcops.console.auth import current_user, require_role
from dcops.console.pages.alarms import SEVERITY_COMPARATOR

dash.register_page(__name__, path="/incidents", name="Incidents", title="dcops - Incidents", order=20,
                   min_role="viewer", needs_alarms=True)

COLUMNS = [
    {"field": "link", "headerName": "incident", "cellRenderer": "markdown", "width": 150},
    {"field": "severity", "cellStyle": severity.grid_cell_style(), "width": 115, "comparator": SEVERITY_COMPARATOR,
     "sort": "desc", "sortIndex": 0},
    {"field": "opened", "headerName": "opened (UTC)", "minWidth": 175, "width": 175, "sort": "desc", "sortIndex": 1},
    {"field": "state", "width": 130},
    {"field": "title", "flex": 2, "minWidth": 260, "tooltipField": "title"},
    {"field": "root", "headerName": "root cause", "width": 140},
    {"field": "alarms", "width": 90, "filter": "agNumberColumnFilter"},
    # customer impact now (open incidents): sort by any of these to rank incidents by impact
    {"field": "impact_accels", "headerName": "accels hit", "width": 105, "filter": "agNumberColumnFilter"},
    {"field": "impact_tokens_per_s_lost", "headerName": "tokens/s lost", "width": 125,
     "filter": "agNumberColumnFilter",
     "valueFormatter": {"function": "params.value == null ? '' : d3.format(',.0f')(params.value)"}},
    {"field": "impact_power_kw", "headerName": "power (kW)", "width": 110, "filter": "agNumberColumnFilter"},
    {"field": "acknowledged_by", "headerName": "ack by", "width": 110},
]


def layout(**_query):
    if data.current().alarms is None:
        return dbc.Alert("No alarm service is connected to this console.", color="secondary", id="incidents-none")
    user = current_user()
    can_act = user is not None and user.can("operator")
    return html.Div([
        html.H3("Incidents"),
        dbc.Row([
            dbc.Col(dbc.Checkbox(id="incidents-open-only", value=True, label="open incidents only"), md="auto"),
            dbc.Col(severity.legend("incidents-legend"), md="auto"),
        ], className="g-3 mb-2 align-items-center"),
        dag.AgGrid(id="incidents-grid", columnDefs=COLUMNS, rowData=[], getRowId="params.data.id",
                   defaultColDef={"sortable": True, "resizable": True, "filter": True},
                   dashGridOptions={"rowSelection": {"mode": "multiRow", "enableClickSelection": False},
                                    "animateRows": False},
                   style={"height": "60vh"}),
        dbc.Row([
            dbc.Col(dbc.Input(id="incidents-ack-note", placeholder="note (optional)"), md=4),
            dbc.Col(dbc.Button("Acknowledge selected", id="incidents-ack", color="primary", disabled=not can_act),
                    md="auto"),
        ], className="g-2 mt-2"),
        html.Div(id="incidents-result", className="mt-2"),
    ])


def incidents_rows(_tick, open_only, _result) -> list[dict]:
    """The grid's rows: the incident table plus a link cell that opens the incident."""
    ctx = data.current()
    if ctx.alarms is None:
        raise PreventUpdate
    return [dict(r, link=f"[{r['id']}](/incident/{r['id']})") for r in data_alarms.incident_table(ctx, bool(open_only))]


def acknowledge(n_clicks, selected, note):
    """Acknowledge the selected incidents as the signed-in operator (each one audited by the
    repository; incidents past acknowledgement are reported, not changed)."""
    if not n_clicks:
        raise PreventUpdate
    user = require_role("operator")
    if not selected:
        return dbc.Alert("Select incidents first.", color="warning", id="incidents-error")
    repo = data.current().alarms
    done, refused = [], []
    for row in selected:
        iid = str(row.get("id", ""))
        try:
            inc = repo.get_incident(iid)
            if getattr(inc.state, "value", inc.state) != "open":
                refused.append(f"{iid} is not open")
                continue
            repo.set_incident_state(iid, "acknowledged", user=user.name, note=(note or "").strip())
            done.append(iid)
        except (KeyError, ValueError) as e:
            refused.append(str(e.args[0]))
    if not done:
        return dbc.Alert("Nothing acknowledged: " + "; ".join(refused), color="warning", id="incidents-error")
    text = f"{user.name} acknowledged {len(done)} incident(s)" + (f"; not: {'; '.join(refused)}" if refused else "")
    return dbc.Alert(text + ".", color="success", id="incidents-ok")


callback(Output("incidents-grid", "rowData"), Input("shell-tick", "data"), Input("incidents-open-only", "value"),
         Input("incidents-result", "children"))(incidents_rows)
callback(Output("incidents-result", "children"), Input("incidents-ack", "n_clicks"),
         State("incidents-grid", "selectedRows"), State("incidents-ack-note", "value"),
         prevent_initial_call=True)(acknowledge)
