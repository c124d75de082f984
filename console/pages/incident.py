"""One incident: state and handover notes, root cause and symptoms, telemetry around it, the
runbook with its steps, the timeline and the notifications sent."""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
import numpy as np
import pandas as pd
from dash import Input, Output, State, callback, dcc, html
from dash.exceptions import PreventUpdate

from dcops.console import data, data_devices, data_impact, data_series, runbook_view, severity
from dcops.console.auth import current_user, require_role
from dcops.console.figures import timeseries_figure

dash.register_page(__name__, path_template="/incident/<incident_id>", name="Incident", title="dcops - Incident",
                   order=91, nav=False, min_role="viewer", needs_alarms=True)

NS = 1_000_000_000
STATES = ("acknowledged", "mitigating", "resolved", "closed", "open")
STEP_ACTIONS = ("confirm", "check", "skip", "request_approval", "approve", "execute")
BEFORE_S, AFTER_S = 1800, 600  # telemetry shown around the incident
HIDDEN, SHOWN = {"display": "none"}, {}


def _ts(ns) -> str:
    return pd.Timestamp(int(ns), unit="ns", tz="UTC").strftime("%Y-%m-%d %H:%M:%S") if ns else ""


def _v(x) -> str:
    return getattr(x, "value", x) if x is not None else ""


def _table(headers, rows, tid):
    return dbc.Table([html.Thead(html.Tr([html.Th(h) for h in headers])),
                      html.Tbody([html.Tr([html.Td(c) for c in r]) for r in rows])], size="sm", striped=True, id=tid)


def layout(incident_id: str | None = None, **_query):
    ctx = data.current()
    user = current_user()
    can_act = user is not None and user.can("operator")
    runbook_controls = []
    if ctx.runbooks is not None:
        runbook_controls = [
            html.H5("Runbook"),
            dbc.Row([
                dbc.Col(dbc.Select(id="incident-runbook-pick", options=[]), md=4),
                dbc.Col(dbc.Button("Start runbook", id="incident-runbook-start", disabled=not can_act), md="auto"),
            ], className="g-2 mb-2"),
            html.Div(id="incident-runbook"),
            html.Div(id="incident-step-detail"),
            # every control is in the layout (callbacks need them); step_panel shows only those the
            # selected step's type and state and the operator's role allow
            dbc.Row([
                dbc.Col(dbc.Select(id="incident-step-pick", options=[]), md=3),
                dbc.Col(dbc.Input(id="incident-step-note", placeholder="note / reason"), md=3),
                dbc.Col([dbc.Button(runbook_view.ACTION_LABELS[a], id=f"incident-step-{a}", size="sm",
                                    color="danger" if a == "skip" else "primary", outline=a == "skip",
                                    className="me-1", style=HIDDEN, disabled=not can_act) for a in STEP_ACTIONS]
                        + [dbc.Button("Sign off runbook", id="incident-run-signoff", size="sm", color="success",
                                      style=HIDDEN, disabled=not can_act)], md=6),
            ], className="g-2 mb-3", id="incident-step-controls", style=HIDDEN),
        ]
    return html.Div([
        dcc.Store(id="incident-id", data=incident_id),
        dcc.Link("← incidents", href="/incidents"),
        html.Div(id="incident-header"),
        dbc.Row([
            dbc.Col(dbc.Select(id="incident-state", options=[{"label": s, "value": s} for s in STATES],
                               value="acknowledged"), md=2),
            dbc.Col(dbc.Input(id="incident-note", placeholder="note (state change or handover)"), md=5),
            dbc.Col(dbc.Button("Set state", id="incident-set-state", color="primary", disabled=not can_act), md="auto"),
            dbc.Col(dbc.Button("Add note", id="incident-add-note", color="secondary", disabled=not can_act), md="auto"),
        ], className="g-2 my-2"),
        html.Div(id="incident-result"),
        *runbook_controls,
        html.H5("Impact"), html.Div(id="incident-impact"),
        html.H5("Root cause and symptoms"), html.Div(id="incident-alarms"),
        html.H5("Telemetry around the incident"), dbc.Row(id="incident-charts"),
        html.H5("Timeline"), html.Div(id="incident-timeline"),
        html.H5("Notifications"), html.Div(id="incident-notifications"),
    ])


def render_incident(_n, incident_id, _result):
    """Header, alarms, charts, timeline and notifications of the incident."""
    ctx = data.current()
    if ctx.alarms is None or not incident_id:
        raise PreventUpdate
    repo = ctx.alarms
    try:
        inc = repo.get_incident(incident_id)
    except KeyError as e:
        return dbc.Alert(str(e.args[0]), color="warning", id="incident-missing"), "", [], "", ""
    header = html.Div([
        html.H3(inc.title, id="incident-title"),
        dbc.Badge(_v(inc.state), color="info", className="me-2", id="incident-state-badge"),
        severity.badge(inc.severity, "incident-severity-badge"),
        html.Span(f"opened {_ts(inc.opened_ns)} by {inc.opened_by}", className="text-muted me-3"),
        html.Span(f"acknowledged by {inc.acknowledged_by}" if inc.acknowledged_by else "", className="text-muted"),
    ])
    alarms = repo.incident_alarms(incident_id)
    alarm_rows = [("root cause" if a.root_cause or a.component == inc.root_component else "symptom",
                   _v(a.severity), a.component, a.specific_problem, _v(a.probable_cause), _ts(a.raised_ns),
                   "cleared" if not a.active else "active", a.acknowledged_by or "") for a in alarms]
    alarm_table = _table(("role", "severity", "component", "problem", "cause", "raised", "state", "ack by"),
                         alarm_rows, "incident-alarms-table")
    charts = []
    root = inc.root_component or (alarms[0].component if alarms else None)
    if root and root in ctx.inventory and ctx.inventory.get(root).kind in data_series.DEVICE_CHARTS:
        end = (inc.resolved_ns or data_series.data_now_ns(ctx)) + AFTER_S * NS
        panels, frame = data_devices.panel_series(ctx, root, inc.opened_ns - BEFORE_S * NS, end)
        charts = [dbc.Col(dcc.Graph(figure=timeseries_figure(frame, p.field, f"{root}: {p.title}", p.unit),
                                    config={"displayModeBar": False}), lg=4) for p in panels[:3]]
    timeline = _table(("time (UTC)", "kind", "who", "what"),
                      [(_ts(e.time_ns), _v(e.kind), e.actor, e.text) for e in inc.timeline], "incident-timeline-table")
    notes = repo.notifications(incident_id=incident_id)
    notifications = _table(("created", "receiver", "action", "status", "attempts", "error"),
                           [(_ts(n.created_ns), n.receiver, _v(n.action), _v(n.status), n.attempts, n.last_error)
                            for n in notes], "incident-notifications-table") if notes else html.Div(
        "No notifications.", className="text-muted")
    return header, alarm_table, charts, timeline, notifications


def _num(v, fmt="{:,.0f}") -> str:
    return "–" if v is None or v != v else fmt.format(v)


def render_impact(_n, incident_id):
    """Accelerators behind the incident's root by vendor and model, tokens/s lost and power now."""
    ctx = data.current()
    if ctx.alarms is None or not incident_id:
        raise PreventUpdate
    try:
        inc = ctx.alarms.get_incident(incident_id)
    except KeyError:
        raise PreventUpdate from None
    imp = data_impact.incident_impact(ctx, inc.root_component, inc.opened_ns,
                                      end_ns=(inc.resolved_ns or None))
    if imp.empty:
        return html.Div(f"No accelerator depends on {inc.root_component or 'the root component'}.",
                        className="text-muted", id="incident-impact-none")
    lost = float(np.nansum(imp["tokens_per_s_lost"].to_numpy(np.float64)))
    summary = html.Div([
        html.Strong(f"{int(imp['accelerators'].sum()):,} accelerators affected", id="incident-impact-accels"),
        html.Span(f" · {_num(lost)} tokens/s lost" if imp["tokens_per_s_before"].notna().any()
                  else " · no inference throughput reported", id="incident-impact-tokens", className="ms-1"),
        html.Span(f" · {_num(float(np.nansum(imp['power_kw_now'])), '{:,.1f}')} kW drawn now", className="ms-1"),
    ], className="mb-1")
    rows = [(r.vendor, r.model, int(r.accelerators), _num(r.tokens_per_s_before), _num(r.tokens_per_s_now),
             _num(r.tokens_per_s_lost), _num(r.power_kw_now, "{:,.2f}")) for r in imp.itertuples()]
    return html.Div([summary, _table(("vendor", "model", "accelerators", "tokens/s before", "tokens/s now",
                                      "tokens/s lost", "power now (kW)"), rows, "incident-impact-table")])


def set_state(n_clicks, incident_id, state, note):
    if not n_clicks:
        raise PreventUpdate
    user = require_role("operator")
    try:
        inc = data.current().alarms.set_incident_state(incident_id, state, user=user.name, note=(note or "").strip())
    except (KeyError, ValueError) as e:
        return dbc.Alert(str(e.args[0]), color="warning", id="incident-error")
    return dbc.Alert(f"{user.name} set the incident to {_v(inc.state)}.", color="success", id="incident-ok")


def add_note(n_clicks, incident_id, note):
    if not n_clicks:
        raise PreventUpdate
    user = require_role("operator")
    try:
        data.current().alarms.add_note(incident_id, user.name, note or "")
    except (KeyError, ValueError) as e:
        return dbc.Alert(str(e.args[0]), color="warning", id="incident-error")
    return dbc.Alert(f"Note added by {user.name}.", color="success", id="incident-ok")


# ----- runbook ---------------------------------------------------------------------------------
def render_runbook(_n, incident_id, _result):
    """The incident's runbook run (steps and status) and the choices of runbooks and steps."""
    ctx = data.current()
    if ctx.runbooks is None or not incident_id:
        raise PreventUpdate
    eng = ctx.runbooks
    try:
        runs = eng.runs(incident_id)
        suggested = eng.suggest(incident_id)
    except KeyError as e:
        return dbc.Alert(str(e.args[0]), color="warning"), [], []
    picks = [{"label": f"{rb.id}: {rb.title}", "value": rb.id} for rb in suggested]
    if not runs:
        return html.Div("No runbook started." + ("" if picks else " None applies."), className="text-muted",
                        id="incident-runbook-none"), picks, []
    run = runs[-1]
    rows = [(s.section, s.id, s.title, s.status + (" (destructive)" if s.destructive else ""), s.last_user or "",
             s.note) for s in run.steps]
    nxt = run.next_step
    view = html.Div([
        html.Div(f"{run.runbook.id} — {run.state}, started by {run.started_by}"
                 + (f"; next: {nxt.title}" if nxt and run.state == "active" else "")
                 + ("; all steps finished: sign it off" if run.ready_to_sign else ""), id="incident-run-state",
                 className="fw-bold"),
        html.Div(["Impact of this procedure: ", " ".join(run.runbook.impact.split())], className="small text-muted",
                 id="incident-run-impact"),
        _table(("section", "step", "title", "status", "by", "note"), rows, "incident-steps-table"),
    ])
    steps = [{"label": f"{s.id} ({s.status})", "value": s.id} for s in run.steps]
    return view, picks, steps


def _detail_card(d: runbook_view.StepDetail) -> dbc.Card:
    def line(label, text, lid):
        return html.Div([html.Span(label, className="fw-semibold me-1"), html.Span(text, id=lid)], className="mb-1")
    return dbc.Card(dbc.CardBody([
        html.H6([f"{d.title} ", dbc.Badge(d.kind, color="secondary", className="me-1"),
                 dbc.Badge(d.status, color="info")], id="incident-step-title"),
        line("Instruction:", d.instruction, "incident-step-instruction"),
        line("Impact:", d.impact, "incident-step-impact"),
        line("Expected result:", d.expected, "incident-step-expected"),
        *([line("Notes:", d.notes, "incident-step-notes")] if d.notes else []),
    ]), className="mb-2", color="light")


def step_panel(step_id, _options, incident_id):
    """The selected step's instruction, impact and expected result, and the controls it allows
    (styles for each step button, the sign-off button and the controls row)."""
    ctx = data.current()
    hidden = [HIDDEN] * (len(STEP_ACTIONS) + 2)
    if ctx.runbooks is None or not incident_id:
        raise PreventUpdate
    try:
        runs = ctx.runbooks.runs(incident_id)
    except KeyError:
        return [html.Div(), *hidden]
    if not runs or runs[-1].state != "active":
        return [html.Div(), *hidden]
    run, user = runs[-1], current_user()
    role = user.role if user is not None else None
    styles = [HIDDEN] * len(STEP_ACTIONS)
    detail = html.Div()
    sv = next((s for s in run.steps if s.id == step_id), None)
    if sv is not None:
        allowed = runbook_view.allowed_actions(sv.type, sv.status, sv.destructive, role)
        styles = [SHOWN if a in allowed else HIDDEN for a in STEP_ACTIONS]
        detail = _detail_card(runbook_view.step_detail(run.runbook, sv, data_series.unit_of))
    can_sign = run.ready_to_sign and role in ("operator", "admin")
    return [detail, *styles, SHOWN if can_sign else HIDDEN, SHOWN]


def start_runbook(n_clicks, incident_id, runbook_id):
    if not n_clicks:
        raise PreventUpdate
    user = require_role("operator")
    if not runbook_id:
        return dbc.Alert("Pick a runbook.", color="warning", id="incident-error")
    try:
        run = data.current().runbooks.start(incident_id, runbook_id, user=user.name, role=user.role)
    except (KeyError, ValueError) as e:
        return dbc.Alert(str(e.args[0]), color="warning", id="incident-error")
    return dbc.Alert(f"{user.name} started runbook {run.runbook.id}.", color="success", id="incident-ok")


def run_step(incident_id, action: str, step_id, note):
    """Apply `action` (one of STEP_ACTIONS or "sign_off") to the incident's current run."""
    user = require_role("operator")
    eng = data.current().runbooks
    note = (note or "").strip()
    try:
        runs = eng.runs(incident_id)
        if not runs:
            return dbc.Alert("Start a runbook first.", color="warning", id="incident-error")
        run_id = runs[-1].id
        who = {"user": user.name, "role": user.role}
        if action == "sign_off":
            eng.sign_off(run_id, note=note, **who)
            return dbc.Alert(f"{user.name} signed off the runbook.", color="success", id="incident-ok")
        if action not in STEP_ACTIONS:
            return dbc.Alert(f"Unknown step action {action!r}.", color="warning", id="incident-error")
        if not step_id:
            return dbc.Alert("Pick a step.", color="warning", id="incident-error")
        if action == "confirm":
            eng.confirm(run_id, step_id, note=note, **who)
        elif action == "skip":
            eng.skip(run_id, step_id, reason=note, **who)
        elif action in ("request_approval", "approve"):
            getattr(eng, action)(run_id, step_id, note=note, **who)
        else:  # check, execute
            getattr(eng, action)(run_id, step_id, **who)
    except (KeyError, ValueError) as e:
        return dbc.Alert(str(e.args[0]), color="warning", id="incident-error")
    return dbc.Alert(f"{user.name}: {action.replace('_', ' ')} {step_id}.", color="success", id="incident-ok")


def step_action(*args):
    """The step buttons (and sign off): which one was clicked picks the action."""
    clicks, incident_id, step_id, note = args[:-3], args[-3], args[-2], args[-1]
    trig = dash.ctx.triggered_id
    if not trig or not any(clicks):
        raise PreventUpdate
    action = "sign_off" if trig == "incident-run-signoff" else str(trig).removeprefix("incident-step-")
    return run_step(incident_id, action, step_id, note)


callback(Output("incident-header", "children"), Output("incident-alarms", "children"),
         Output("incident-charts", "children"), Output("incident-timeline", "children"),
         Output("incident-notifications", "children"),
         Input("shell-tick", "data"), State("incident-id", "data"), Input("incident-result", "children"))(
    render_incident)
def default_choice(options, current):
    """Keep the operator's choice while it is still offered; otherwise preselect the first
    suggestion (for steps: the first one still pending), so the next action is one click."""
    values = [o["value"] for o in options or ()]
    if current in values:
        raise PreventUpdate
    pending = [o["value"] for o in options or () if str(o.get("label", "")).endswith("(pending)")]
    if pending:
        return pending[0]
    return values[0] if values else None


callback(Output("incident-impact", "children"), Input("shell-tick", "data"), State("incident-id", "data"))(
    render_impact)
callback(Output("incident-runbook-pick", "value"), Input("incident-runbook-pick", "options"),
         State("incident-runbook-pick", "value"))(default_choice)
def next_step_choice(options, current):
    """Keep the selected step while it still has something to do; once it is done or skipped,
    move to the next unfinished one, so the next step is always the one offered."""
    finished = lambda o: str(o.get("label", "")).endswith(("(done)", "(skipped)"))  # noqa: E731
    opts = list(options or ())
    cur = next((o for o in opts if o["value"] == current), None)
    if cur is not None and not finished(cur):
        raise PreventUpdate
    nxt = next((o["value"] for o in opts if not finished(o)), None)
    if nxt == current:
        raise PreventUpdate
    return nxt


callback(Output("incident-step-pick", "value"), Input("incident-step-pick", "options"),
         State("incident-step-pick", "value"))(next_step_choice)
callback(Output("incident-result", "children", allow_duplicate=True), Input("incident-set-state", "n_clicks"),
         State("incident-id", "data"), State("incident-state", "value"), State("incident-note", "value"),
         prevent_initial_call=True)(set_state)
callback(Output("incident-result", "children", allow_duplicate=True), Input("incident-add-note", "n_clicks"),
         State("incident-id", "data"), State("incident-note", "value"), prevent_initial_call=True)(add_note)
callback(Output("incident-runbook", "children"), Output("incident-runbook-pick", "options"),
         Output("incident-step-pick", "options"), Input("shell-tick", "data"), State("incident-id", "data"),
         Input("incident-result", "children"))(render_runbook)
callback(Output("incident-step-detail", "children"), *[Output(f"incident-step-{a}", "style") for a in STEP_ACTIONS],
         Output("incident-run-signoff", "style"), Output("incident-step-controls", "style"),
         Input("incident-step-pick", "value"), Input("incident-step-pick", "options"),
         State("incident-id", "data"))(step_panel)
callback(Output("incident-result", "children", allow_duplicate=True), Input("incident-runbook-start", "n_clicks"),
         State("incident-id", "data"), State("incident-runbook-pick", "value"), prevent_initial_call=True)(start_runbook)
callback(Output("incident-result", "children", allow_duplicate=True),
         *[Input(f"incident-step-{a}", "n_clicks") for a in STEP_ACTIONS], Input("incident-run-signoff", "n_clicks"),
         State("incident-id", "data"), State("incident-step-pick", "value"), State("incident-step-note", "value"),
         prevent_initial_call=True)(step_action)
