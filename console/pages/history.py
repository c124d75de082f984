"""History: MTTA/MTTR trends, recurring offenders, incidents on a timeline, similar-incident
lookup and postmortem export."""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, State, callback, dcc, html
from dash.exceptions import PreventUpdate

from dcops.console import data, data_alarms, severity

dash.register_page(__name__, path="/history", name="History", title="dcops - History", order=50, min_role="viewer",
                   needs_alarms=True)

RANGES_DAYS = {"24h": 1, "7d": 7, "30d": 30, "90d": 90}
SEV_COLOUR = severity.COLOURS  # the console's one palette


def layout(**_query):
    if data.current().alarms is None:
        return dbc.Alert("No alarm service is connected to this console.", color="secondary", id="history-none")
    return html.Div([
        html.H3("History"),
        dbc.RadioItems(id="history-range", options=[{"label": k, "value": k} for k in RANGES_DAYS], value="7d",
                       inline=True),
        dbc.Row(id="history-kpis", className="g-2 my-2"),
        dbc.Row([dbc.Col(dcc.Graph(id="history-trend", config={"displayModeBar": False}), lg=6),
                 dbc.Col(dcc.Graph(id="history-timeline", config={"displayModeBar": False}), lg=6)]),
        html.H5("Recurring offenders"), html.Div(id="history-offenders"),
        html.H5("Have we seen this before?"),
        dbc.Row([dbc.Col(dbc.Input(id="history-incident", placeholder="incident id"), md=3),
                 dbc.Col(dbc.Button("Find similar", id="history-similar-go"), md="auto"),
                 dbc.Col(dbc.Button("Export postmortem", id="history-export", color="secondary"), md="auto")],
                className="g-2"),
        html.Div(id="history-similar", className="mt-2"),
        dcc.Download(id="history-download"),
    ])


def _kpi(label, value, kid):
    return dbc.Col(dbc.Card(dbc.CardBody([html.Div(label, className="text-muted small"), html.H4(value, id=kid)])), md=3)


def _min(v) -> str:
    return "–" if v is None or v != v else f"{v:.1f} min"


def update_history(_n, range_key):
    ctx = data.current()
    if ctx.alarms is None or range_key not in RANGES_DAYS:
        raise PreventUpdate
    hist = data_alarms.incident_history(ctx, RANGES_DAYS[range_key])
    kpis = [_kpi("Incidents", f"{len(hist)}", "history-count"),
            _kpi("MTTA", _min(hist["tta_s"].mean() / 60 if len(hist) else None), "history-mtta"),
            _kpi("MTTR", _min(hist["ttr_s"].mean() / 60 if len(hist) else None), "history-mttr"),
            _kpi("Open", f"{int(hist['state'].isin(data_alarms.OPEN_STATES).sum())}", "history-open")]
    daily = data_alarms.daily_response(hist)
    days = [d.strftime("%Y-%m-%d") for d in daily["day"]]
    trend = {"data": [{"type": "bar", "name": "MTTA (min)", "x": days, "y": daily["mtta_min"].tolist()},
                      {"type": "bar", "name": "MTTR (min)", "x": days, "y": daily["mttr_min"].tolist()}],
             "layout": {"title": {"text": "MTTA / MTTR per day"}, "height": 300, "barmode": "group",
                        "margin": {"l": 50, "r": 10, "t": 40, "b": 40}}}
    times = pd.to_datetime(hist["opened_ns"], unit="ns", utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ").tolist()
    timeline = {"data": [{"type": "scatter", "mode": "markers", "x": times, "y": hist["root"].tolist(),
                          "text": hist["title"].tolist(), "hovertemplate": "%{text}<extra></extra>",
                          "marker": {"size": 10, "color": [SEV_COLOUR.get(s, "#607d8b") for s in hist["severity"]]}}],
                "layout": {"title": {"text": "Incidents by root component"}, "height": 300,
                           "margin": {"l": 120, "r": 10, "t": 40, "b": 40}, "xaxis": {"type": "date"}}}
    off = data_alarms.recurring_offenders(hist)
    offenders = dbc.Table.from_dataframe(off, size="sm", striped=True, id="history-offenders-table") if len(off) \
        else html.Div("No component had two or more incidents in this range.", className="text-muted",
                      id="history-offenders-none")
    return kpis, trend, timeline, offenders


def find_similar(n_clicks, incident_id, range_key):
    if not n_clicks:
        raise PreventUpdate
    ctx = data.current()
    hist = data_alarms.incident_history(ctx, RANGES_DAYS.get(range_key, 7))
    try:
        similar = data_alarms.similar_incidents(ctx, (incident_id or "").strip(), hist)
    except KeyError as e:
        return dbc.Alert(str(e.args[0]), color="warning", id="history-error")
    if similar.empty:
        return html.Div("Nothing similar in this range.", className="text-muted", id="history-similar-none")
    rows = [html.Tr([html.Td(dcc.Link(r.id, href=f"/incident/{r.id}")), html.Td(r.title), html.Td(r.why),
                     html.Td(data_alarms.utc_time(r.opened_ns)), html.Td(r.state)]) for r in similar.itertuples()]
    return dbc.Table([html.Thead(html.Tr([html.Th(h) for h in ("incident", "title", "why", "opened", "state")])),
                      html.Tbody(rows)], size="sm", striped=True, id="history-similar-table")


def export_postmortem(n_clicks, incident_id):
    if not n_clicks or not (incident_id or "").strip():
        raise PreventUpdate
    iid = incident_id.strip()
    try:
        text = data_alarms.postmortem_markdown(data.current(), iid)
    except KeyError:
        raise PreventUpdate from None
    return {"content": text, "filename": f"postmortem-{iid}.md", "type": "text/markdown"}


callback(Output("history-kpis", "children"), Output("history-trend", "figure"), Output("history-timeline", "figure"),
         Output("history-offenders", "children"), Input("shell-tick", "data"),
         Input("history-range", "value"))(update_history)
callback(Output("history-similar", "children"), Input("history-similar-go", "n_clicks"),
         State("history-incident", "value"), State("history-range", "value"), prevent_initial_call=True)(find_similar)
callback(Output("history-download", "data"), Input("history-export", "n_clicks"), State("history-incident", "value"),
         prevent_initial_call=True)(export_postmortem)
