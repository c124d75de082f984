"""Fleet efficiency: GPUs and NPUs side by side (power, utilisation, inference throughput in
tokens and requests per second, energy per token, cost)."""

from __future__ import annotations

import math

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, callback, dcc, html

from dcops.console import data, data_series
from dcops.console.figures import trend_figure, vendor_bars

dash.register_page(__name__, path="/fleet", name="Fleet efficiency", title="dcops - Fleet", order=40,
                   min_role="viewer")

# (column, header, format): the comparison table, as data.
COLUMNS = (
    ("vendor", "vendor", "{}"), ("model", "model", "{}"), ("count", "accelerators", "{:,.0f}"),
    ("reporting", "reporting", "{:,.0f}"), ("power_w", "mean power W", "{:,.0f}"), ("tdp_w", "TDP W", "{:,.0f}"),
    ("util_pct", "mean util %", "{:.1f}"), ("tokens_per_s", "tokens/s", "{:,.0f}"),
    ("requests_per_s", "requests/s", "{:,.1f}"),
    ("j_per_token", "J/token", "{:.3f}"), ("cost_per_h", "energy cost /h", "{:,.2f}"),
    ("temp_degc", "mean temp °C", "{:.1f}"), ("headroom_degc", "thermal headroom °C", "{:.1f}"),
)


def _cell(v, fmt: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return fmt.format(v)


def comparison_table(table) -> dbc.Table:
    head = html.Thead(html.Tr([html.Th(h) for _, h, _ in COLUMNS]))
    body = [html.Tr([html.Td(_cell(row[c], f)) for c, _, f in COLUMNS]) for _, row in table.iterrows()]
    return dbc.Table([head, html.Tbody(body)], size="sm", striped=True, id="fleet-table")


def layout(**_query):
    return html.Div([
        html.H3("Fleet efficiency"),
        html.Div(id="fleet-table-box"),
        html.Div("Thermal headroom: slowdown temperature minus the hottest accelerator of the model. "
                 "Energy cost at the site's price per kWh.", className="text-muted small mb-2"),
        dbc.Row(id="fleet-bars"),
        dbc.RadioItems(id="fleet-range", options=[{"label": k, "value": k} for k in ("15m", "1h", "6h", "24h")],
                       value="1h", inline=True),
        dbc.Row(id="fleet-trends"),
    ])


def update_fleet(_n_intervals, range_key):
    ctx = data.current()
    table = data_series.fleet_table(ctx)
    bars = [dbc.Col(dcc.Graph(figure=vendor_bars(table, col, title, unit), config={"displayModeBar": False}), lg=3)
            for col, title, unit in (("power_w", "Power per accelerator", "W"), ("util_pct", "Utilisation", "%"),
                                     ("j_per_token", "Energy per token", "J"),
                                     ("headroom_degc", "Thermal headroom", "°C"))]
    trends = data_series.fleet_trends(ctx, range_key if range_key in data_series.RANGES else "1h")
    lines = [dbc.Col(dcc.Graph(figure=trend_figure(trends, f, t, u), config={"displayModeBar": False}), lg=6)
             for f, t, u in (("accel_power_w", "Mean power per accelerator", "W"),
                             ("accel_util_pct", "Mean utilisation", "%"))]
    return comparison_table(table), bars, lines


callback(Output("fleet-table-box", "children"), Output("fleet-bars", "children"), Output("fleet-trends", "children"),
         Input("shell-tick", "data"), Input("fleet-range", "value"))(update_fleet)
