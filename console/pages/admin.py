"""Admin: silences and maintenance windows, receivers, routes and on-call (read-only), and the
audit log of operator actions (admin only)."""

from __future__ import annotations

import re

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, State, callback, html
from dash.exceptions import PreventUpdate

from dcops.console import data
from dcops.console.auth import current_user, require_role

dash.register_page(__name__, path="/admin", name="Admin", title="dcops - Admin", order=70, min_role="admin",
                   needs_alarms=True)

NS = 1_000_000_000
DURATIONS = {"1 hour": 3600, "4 hours": 4 * 3600, "8 hours": 8 * 3600, "24 hours": 86400, "7 days": 7 * 86400}


SILENCE_COLUMNS = [
    {"field": "kind", "width": 150}, {"field": "what", "flex": 1, "minWidth": 220},
    {"field": "from", "headerName": "from (UTC)", "width": 160},
    {"field": "until", "headerName": "until (UTC)", "width": 160, "sort": "asc"},
    {"field": "by", "width": 110}, {"field": "reason", "flex": 1, "minWidth": 200, "tooltipField": "reason"},
    {"field": "id", "width": 150},
]
AUDIT_COLUMNS = [
    {"field": "seq", "headerName": "#", "width": 90, "sort": "desc", "filter": "agNumberColumnFilter"},
    {"field": "time", "headerName": "time (UTC)", "width": 160}, {"field": "user", "width": 120},
    {"field": "action", "width": 180}, {"field": "on", "flex": 1, "minWidth": 220},
]


def matcher_text(m) -> str:
    """A matcher as an operator reads it: a regex that only escapes a literal shows as `name = literal`."""
    name, op, value = getattr(m, "name", None), getattr(m, "op", None), getattr(m, "value", None)
    if name is None:
        return str(m)
    if op in ("=~", "!~"):
        literal = re.sub(r"\\(.)", r"\1", value)
        if re.escape(literal) == value:
            return f"{name} {'=' if op == '=~' else '!='} {literal}"
    return f"{name} {op} {value}"


def _ts(ns) -> str:
    return pd.Timestamp(int(ns), unit="ns", tz="UTC").strftime("%Y-%m-%d %H:%M") if ns else ""


def layout(**_query):
    user = current_user()
    if user is None or not user.can("admin"):
        return dbc.Alert("This page needs the admin role.", color="danger", id="admin-forbidden")
    if data.current().alarms is None:
        return dbc.Alert("No alarm service is connected to this console.", color="secondary", id="admin-none")
    return html.Div([
        html.H3("Silences and maintenance windows"),
        html.Div(dag.AgGrid(id="admin-silences-grid", columnDefs=SILENCE_COLUMNS, rowData=[], getRowId="params.data.id",
                            defaultColDef={"sortable": True, "resizable": True, "filter": True},
                            dashGridOptions={"rowSelection": {"mode": "multiRow", "enableClickSelection": True},
                                             "animateRows": False},
                            style={"height": "30vh"}), id="admin-silences"),
        dbc.Row([
            dbc.Col(dbc.Button("Expire selected", id="admin-expire", color="secondary"), md="auto"),
        ], className="g-2 mt-1 mb-3"),
        html.H5("New maintenance window"),
        dbc.Row([
            dbc.Col(dbc.Input(id="admin-mw-component", placeholder="component (e.g. CRAC-1, R1-03)"), md=3),
            dbc.Col(dbc.Select(id="admin-mw-duration", value="4 hours",
                               options=[{"label": k, "value": k} for k in DURATIONS]), md=2),
            dbc.Col(dbc.Input(id="admin-mw-reason", placeholder="reason"), md=4),
            dbc.Col(dbc.Button("Create", id="admin-mw-create", color="primary"), md="auto"),
        ], className="g-2"),
        html.Div(id="admin-result", className="mt-2"),
        html.H3("Receivers, routes and on-call", className="mt-4"),
        notification_setup(data.current().alerting, int(data.current().clock() * NS)),
        html.H3("Audit log", className="mt-4"),
        html.Div(id="admin-audit-chain"),
        html.Div(dag.AgGrid(id="admin-audit-grid", columnDefs=AUDIT_COLUMNS, rowData=[], getRowId="params.data.seq",
                            defaultColDef={"sortable": True, "resizable": True, "filter": True},
                            dashGridOptions={"animateRows": False}, style={"height": "45vh"}), id="admin-audit"),
    ])


def notification_setup(alerting, now_ns: int):
    """Where notifications go: receivers (no secrets), the routing tree, who is on call now."""
    if alerting is None:
        return html.Div("No alerting configuration is connected to this console.", className="text-muted",
                        id="admin-routing-none")
    from dcops.alerts.config_view import oncall_view, receivers_view, routes_view

    def table(id_, headers, rows):
        return dbc.Table([html.Thead(html.Tr([html.Th(h) for h in headers])),
                          html.Tbody([html.Tr([html.Td(c) for c in r]) for r in rows])],
                         size="sm", striped=True, id=id_)

    recv = receivers_view(alerting)
    parts = [table("admin-receivers", ("receiver", "type", "delivers to", "signed"),
                   [(r.name, r.type, r.destination, "HMAC-SHA256" if r.signed else "") for r in recv])
             if recv else html.Div("No receivers: alarms and incidents are kept, nobody is notified.",
                                   className="text-muted", id="admin-receivers-none")]
    parts.append(table("admin-routes", ("matchers", "receiver", "escalation", "continue"),
                       [("\u2003" * r.depth + r.matchers, r.receiver, r.escalation, "yes" if r.continues else "")
                        for r in routes_view(alerting)]))
    oncall = oncall_view(alerting, now_ns)
    if oncall:
        parts.append(table("admin-oncall", ("schedule", "on call now", "notified through"),
                           [(o.schedule, o.on_call, o.receivers) for o in oncall]))
    return html.Div(parts, id="admin-routing")


def render_admin(_n, _result):
    """Rows of the silences grid and the audit grid, and the audit chain's state."""
    ctx = data.current()
    if ctx.alarms is None:
        raise PreventUpdate
    require_role("admin")
    silences = [{"id": s.id, "kind": "maintenance window" if hasattr(s, "component") else "silence",
                 "what": getattr(s, "component", None) or ", ".join(matcher_text(m) for m in getattr(s, "matchers", ())),
                 "from": _ts(s.starts_ns), "until": _ts(s.ends_ns), "by": s.author, "reason": s.reason}
                for s in ctx.alarms.list_silences()]
    actions = ctx.alarms.operator_actions(limit=200)
    audit = [{"seq": a["seq"], "time": _ts(a["time_ns"]), "user": a["user"], "action": a["action"],
              "on": f"{a['target_kind']} {a['target_id']}"} for a in actions]
    chain = ""
    if ctx.runbooks is not None:
        v = ctx.runbooks.audit.verify()
        # the chain holds every audited change (operator actions, runbook steps, logins, accounts),
        # more than the operator actions listed below
        text = (f"Audit chain intact: all {v.checked} records (operator actions, runbook steps, sign-ins, "
                f"account changes) verified." if v.ok else
                f"Audit chain BROKEN at record {v.first_bad_seq}: {v.reason}")
        chain = dbc.Alert(text, color="success" if v.ok else "danger", id="admin-audit-chain-state")
    return silences, audit, chain


def expire(n_clicks, selected):
    """Expire the selected silences and maintenance windows (admin only, each audited)."""
    if not n_clicks:
        raise PreventUpdate
    user = require_role("admin")
    if not selected:
        return dbc.Alert("Select silences first.", color="warning", id="admin-error")
    done, failed = [], []
    for row in selected:
        sid = str(row.get("id", "")).strip()
        try:
            data.current().alarms.expire_silence(sid, user.name)
            done.append(sid)
        except (KeyError, ValueError) as e:
            failed.append(str(e.args[0]))
    if not done:
        return dbc.Alert("; ".join(failed), color="warning", id="admin-error")
    return dbc.Alert(f"{user.name} expired {', '.join(done)}." + (f" Not: {'; '.join(failed)}" if failed else ""),
                     color="success", id="admin-ok")


def create_maintenance(n_clicks, component, duration, reason):
    if not n_clicks:
        raise PreventUpdate
    user = require_role("admin")
    ctx = data.current()
    if duration not in DURATIONS:
        return dbc.Alert(f"Unknown duration {duration!r}.", color="warning", id="admin-error")
    now = int(ctx.clock() * NS)
    try:
        mw = ctx.alarms.create_maintenance((component or "").strip(), now, now + DURATIONS[duration] * NS,
                                           author=user.name, reason=reason or "")
    except (KeyError, ValueError) as e:
        return dbc.Alert(str(e.args[0]), color="warning", id="admin-error")
    return dbc.Alert(f"Maintenance window {mw.id} on {mw.component} for {duration}.", color="success", id="admin-ok")


callback(Output("admin-silences-grid", "rowData"), Output("admin-audit-grid", "rowData"),
         Output("admin-audit-chain", "children"), Input("shell-tick", "data"),
         Input("admin-result", "children"))(render_admin)
callback(Output("admin-result", "children", allow_duplicate=True), Input("admin-expire", "n_clicks"),
         State("admin-silences-grid", "selectedRows"), prevent_initial_call=True)(expire)
callback(Output("admin-result", "children", allow_duplicate=True), Input("admin-mw-create", "n_clicks"),
         State("admin-mw-component", "value"), State("admin-mw-duration", "value"), State("admin-mw-reason", "value"),
         prevent_initial_call=True)(create_maintenance)
