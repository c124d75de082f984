"""Alarms: the live NOC list (AG Grid), filtered by severity, area and cause, symptoms folded
under their root cause; operators acknowledge, silence and annotate selected alarms."""

from __future__ import annotations

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import Input, Output, State, callback, html
from dash.exceptions import PreventUpdate

from dcops.console import severity
from dcops.console import data, data_alarms
from dcops.console.auth import current_user, require_role

dash.register_page(__name__, path="/alarms", name="Alarms", title="dcops - Alarms", order=10, min_role="viewer",
                   needs_alarms=True)

NS = 1_000_000_000
ALL = "all"  # the "no filter" choice of the filter selects
SILENCE_FOR = {"30 min": 1800, "1 hour": 3600, "4 hours": 4 * 3600, "24 hours": 86400}
SEVERITY_STYLE = severity.grid_cell_style()
# AG Grid sorts severity by X.733 rank, not alphabetically (assets/dashAgGridFunctions.js)
SEVERITY_COMPARATOR = {"function": "severityCompare"}
# default sort: most severe first, then newest; the time column wide enough for the whole stamp
COLUMNS = [
    {"field": "severity", "cellStyle": SEVERITY_STYLE, "width": 115, "comparator": SEVERITY_COMPARATOR,
     "sort": "desc", "sortIndex": 0},
    {"field": "raised", "headerName": "raised (UTC)", "minWidth": 175, "width": 175, "sort": "desc", "sortIndex": 1},
    {"field": "component", "width": 140},
    {"field": "problem", "flex": 2, "minWidth": 260, "wrapText": True, "autoHeight": True,
     "tooltipField": "problem"},
    {"field": "state", "minWidth": 180, "width": 180},
    {"field": "incident", "width": 140},
    {"field": "cause", "width": 190, "tooltipField": "cause"},
    {"field": "role", "headerName": "correlation", "width": 115},
    {"field": "symptoms", "width": 95},
    {"field": "acknowledged_by", "headerName": "ack by", "width": 105},
    {"field": "expected", "width": 110},
    {"field": "suppressed", "width": 130},
]


def layout(**_query):
    ctx = data.current()
    if ctx.alarms is None:
        return dbc.Alert("No alarm service is connected to this console.", color="secondary", id="alarms-none")
    user = current_user()
    can_act = user is not None and user.can("operator")
    inv = ctx.inventory
    areas = [{"label": f"hall {h.name}", "value": h.name} for h in inv.of_kind("hall")]
    areas += [{"label": f"row {r.name}", "value": r.name} for r in inv.rows]
    return html.Div([
        dbc.Row([
            dbc.Col(dbc.Select(id="alarms-severity", value=ALL, options=[{"label": "all severities", "value": ALL}] + [
                {"label": f"{s} and worse", "value": s} for s in ("critical", "major", "minor", "warning")]), md=2),
            dbc.Col(dbc.Select(id="alarms-area", value=ALL, options=[{"label": "whole site", "value": ALL}] + areas), md=2),
            dbc.Col(dbc.Select(id="alarms-cause", value=ALL, options=[{"label": "all causes", "value": ALL}]), md=2),
            dbc.Col(dbc.Input(id="alarms-text", placeholder="search problem or object", debounce=True), md=3),
            dbc.Col(dbc.Checkbox(id="alarms-fold", value=True, label="fold symptoms under root cause"), md=3),
        ], className="g-2 mb-2"),
        dag.AgGrid(id="alarms-grid", columnDefs=COLUMNS, rowData=[], getRowId="params.data.id",
                   defaultColDef={"sortable": True, "resizable": True, "filter": True},
                   dashGridOptions={"rowSelection": {"mode": "multiRow", "enableClickSelection": True},
                                    "animateRows": False},
                   style={"height": "55vh"}),
        dbc.Row([
            dbc.Col(dbc.Button("Acknowledge selected", id="alarms-ack", color="primary", disabled=not can_act), md="auto"),
            dbc.Col(dbc.Select(id="alarms-silence-for", value="1 hour",
                               options=[{"label": k, "value": k} for k in SILENCE_FOR]), md=2),
            dbc.Col(dbc.Input(id="alarms-silence-reason", placeholder="silence reason (required)"), md=3),
            dbc.Col(dbc.Button("Silence selected", id="alarms-silence", color="secondary", disabled=not can_act),
                    md="auto"),
        ], className="g-2 mt-2"),
        dbc.Row([
            dbc.Col(dbc.Input(id="alarms-note-text", placeholder="note for the incidents of the selected alarms"), md=6),
            dbc.Col(dbc.Button("Add note", id="alarms-note", color="secondary", disabled=not can_act), md="auto"),
        ], className="g-2 mt-2"),
        html.Div(id="alarms-result", className="mt-2"),
        html.Div("Viewers see the list; acknowledging and silencing need the operator role." if not can_act else "",
                 className="text-muted small", id="alarms-role-note"),
    ])


def refresh_alarms(_n_intervals, severity, area, cause, text, fold, _result):
    """The grid rows and the cause options for the current filters."""
    ctx = data.current()
    if ctx.alarms is None:
        raise PreventUpdate
    pick = lambda v: None if v in (None, "", ALL) else v  # noqa: E731
    f = data_alarms.AlarmFilter(pick(severity), pick(area), pick(cause), text or None, bool(fold))
    causes = [{"label": "all causes", "value": ALL}] + [{"label": c, "value": c} for c in data_alarms.causes(ctx)]
    return data_alarms.alarm_table(ctx, f), causes


def acknowledge(n_clicks, selected):
    """Acknowledge the selected alarms as the signed-in operator."""
    if not n_clicks:
        raise PreventUpdate
    user = require_role("operator")
    if not selected:
        return dbc.Alert("Select alarms first.", color="warning", id="alarms-error")
    repo = data.current().alarms
    done = []
    for row in selected:
        try:
            done.append(repo.acknowledge_alarm(str(row["id"]), user=user.name))
        except (KeyError, ValueError) as e:
            return dbc.Alert(str(e.args[0]), color="warning", id="alarms-error")
    return dbc.Alert(f"{user.name} acknowledged {len(done)} alarm(s).", color="success", id="alarms-ok")


def silence(n_clicks, selected, duration, reason):
    """Silence the selected alarms (their component and probable cause) for the chosen time."""
    if not n_clicks:
        raise PreventUpdate
    user = require_role("operator")
    if not selected:
        return dbc.Alert("Select alarms first.", color="warning", id="alarms-error")
    if not (reason or "").strip():
        return dbc.Alert("A silence needs a reason.", color="warning", id="alarms-error")
    if duration not in SILENCE_FOR:
        return dbc.Alert(f"Unknown duration {duration!r}.", color="warning", id="alarms-error")
    ctx = data.current()
    repo = ctx.alarms
    now = int(ctx.clock() * NS)
    made = 0
    for row in selected:
        try:
            alarm = repo.get_alarm(str(row["id"]))
            repo.create_silence(data_alarms.silence_matchers(alarm), now, now + SILENCE_FOR[duration] * NS,
                                author=user.name, reason=reason.strip())
            made += 1
        except (KeyError, ValueError) as e:
            return dbc.Alert(str(e.args[0]), color="warning", id="alarms-error")
    return dbc.Alert(f"{user.name} silenced {made} alarm(s) for {duration}.", color="success", id="alarms-ok")


def add_note(n_clicks, selected, text):
    """Add the operator's note to the incident timeline of each selected alarm's incident."""
    if not n_clicks:
        raise PreventUpdate
    user = require_role("operator")
    if not selected:
        return dbc.Alert("Select alarms first.", color="warning", id="alarms-error")
    repo = data.current().alarms
    incidents = []
    try:
        for row in selected:
            iid = repo.get_alarm(str(row["id"])).incident_id
            if iid and iid not in incidents:
                incidents.append(iid)
        if not incidents:
            return dbc.Alert("The selected alarms belong to no incident.", color="warning", id="alarms-error")
        for iid in incidents:
            repo.add_note(iid, user.name, text or "")
    except (KeyError, ValueError) as e:
        return dbc.Alert(str(e.args[0]), color="warning", id="alarms-error")
    return dbc.Alert(f"Note added to {len(incidents)} incident(s) by {user.name}.", color="success", id="alarms-ok")


callback(Output("alarms-grid", "rowData"), Output("alarms-cause", "options"),
         Input("shell-tick", "data"), Input("alarms-severity", "value"), Input("alarms-area", "value"),
         Input("alarms-cause", "value"), Input("alarms-text", "value"), Input("alarms-fold", "value"),
         Input("alarms-result", "children"))(refresh_alarms)
callback(Output("alarms-result", "children", allow_duplicate=True), Input("alarms-ack", "n_clicks"),
         State("alarms-grid", "selectedRows"), prevent_initial_call=True)(acknowledge)
callback(Output("alarms-result", "children", allow_duplicate=True), Input("alarms-silence", "n_clicks"),
         State("alarms-grid", "selectedRows"), State("alarms-silence-for", "value"),
         State("alarms-silence-reason", "value"), prevent_initial_call=True)(silence)
callback(Output("alarms-result", "children", allow_duplicate=True), Input("alarms-note", "n_clicks"),
         State("alarms-grid", "selectedRows"), State("alarms-note-text", "value"), prevent_initial_call=True)(add_note)
