"""Page callbacks called as plain functions inside a request of the real app."""

from __future__ import annotations

import importlib

import pytest
from dash.exceptions import PreventUpdate
from werkzeug.exceptions import Forbidden

from dcops.console.figures import COLOUR_BY, floor_figure
from tests.console.support import HOST, PASSWORDS


def page(name: str):
    return importlib.import_module(f"dcops.console.pages.{name}")


def as_user(app, name: str | None):
    """A request context signed in as `name` (the guard sets the user, as for a real request)."""
    ctx = app.server.test_request_context("/", base_url=f"http://{HOST}")
    ctx.push()
    if name:
        import flask

        flask.g.dcops_user = app.server.config["DCOPS_AUTH"].users.verify(name, PASSWORDS[name])
    return ctx


@pytest.fixture
def viewer(app):
    ctx = as_user(app, "viewer")
    yield app
    ctx.pop()


def test_floor_callback_colours_racks(viewer):
    floor = page("floor")
    fig, kpis, vendors, incidents, stamp = floor.update_floor(3, "inlet")
    heat = fig["data"][0]
    assert heat["type"] == "heatmap" and list(heat["y"]) == ["R1", "R2"]
    assert heat["z"][0][0] == 33.0 and heat["z"][0][1] == 24.0  # R1-01 is hot
    assert heat["text"][1][2] == "R2-03" and "R2-03" in heat["customdata"][1][2]
    import plotly.graph_objects as go

    go.Figure(fig)  # a valid Plotly figure
    assert stamp.startswith("data at ") and incidents == []
    ids = [c.children.children.children[1].id for c in kpis]
    assert "floor-kpi-pue" in ids
    pue = next(c.children.children.children[1].children for c in kpis if c.children.children.children[1].id == "floor-kpi-pue")
    assert pue == "1.30"
    fig, *_ = floor.update_floor(3, "hottest")
    assert fig["data"][0]["z"][0][1] > 80  # R1-02 has the throttling accelerator
    with pytest.raises(PreventUpdate):
        floor.update_floor(3, "nonsense")


def test_floor_click_opens_rack(viewer):
    floor = page("floor")
    assert floor.open_rack({"points": [{"text": "R2-02", "z": 24}]}) == "/rack/R2-02"
    for bad in (None, {}, {"points": []}, {"points": [{"text": ""}]}, {"points": [{"text": "X"}]}):
        with pytest.raises(PreventUpdate):
            floor.open_rack(bad)


def test_floor_layout_offers_alarm_colouring_only_with_alarms(viewer):
    layout = page("floor").layout()
    radio = layout.children[3].children[0].children[0].children[1]
    assert [o["value"] for o in radio.options] == ["inlet", "power", "hottest"]


def test_rack_callback(viewer):
    rack = page("rack")
    body, accels = rack.update_rack(0, "R1-03")
    text = str(body)
    assert "R1-03-S01" in text and "PDU-A1" in text and "Accelerators (4)" in text
    assert "4 healthy" in text  # the server's accelerators summed up on its row
    assert [a["id"] for a in accels] == [f"R1-03-S01:{i}" for i in range(4)]
    first = accels[0]
    assert first["model"] == "L40S" and first["state"] == "healthy" and first["device"] == "R1-03-S01"
    assert first["link"] == "[R1-03-S01:0](/devices?name=R1-03-S01:0)"
    assert all(isinstance(a["temp"], float) or a["temp"] is None for a in accels)
    import json

    json.dumps(accels, allow_nan=False)  # the grid's rows are strict JSON (no NaN)
    missing, none = rack.update_rack(0, "R9-99")
    assert missing.id == "rack-missing" and "R9-99" in missing.children and none == []
    with pytest.raises(PreventUpdate):
        rack.update_rack(0, None)


def test_devices_callbacks(viewer):
    devices = page("devices")
    tree = str(devices.show_tree("r2-01-s01:", None))
    assert "name=R2-01-S01:0" in tree and "name=R2-01-S01:3" in tree and "R1-01" not in tree
    assert "devices-selected" in str(devices.show_tree(None, "R2-01-S01:3"))
    rows = devices.grid_rows(None, "R2-01-S01", 0)
    assert [r["name"] for r in rows][:2] == ["R2-01-S01", "R2-01-S01:0"]
    assert {r["state"] for r in rows if r["kind"] == "accel"} >= {"down", "healthy"}
    title, charts, events, alarms = devices.show_device("R2-01-S01:0", "1h", 0)
    assert "R2-01-S01:0" in title.children and len(charts) == 5  # what the fake site reports for it
    assert "Core temperature" in str(charts) and "accel_temp_degc" not in str(charts[0].children.figure)
    assert events.id == "devices-events-table" and "XID 79" in str(events)
    title, charts, events, _ = devices.show_device("nope", "1h", 0)
    assert title.id == "devices-error" and charts == []
    title, charts, _, _ = devices.show_device("R1", "1h", 0)  # a row: no charts, its contents in the grid
    assert title.id == "devices-name" and charts == []


def test_fleet_callback(viewer):
    fleet = page("fleet")
    table, bars, trends = fleet.update_fleet(0, "1h")
    text = str(table)
    assert "RBLN-CA22" in text and "H100-SXM5-80GB" in text and "L40S" in text
    assert len(bars) == 4 and len(trends) == 2


def test_admin_save_user_checks_role_on_the_server(app):
    admin_users = page("admin_users")
    users = app.server.config["DCOPS_AUTH"].users
    for role in ("viewer", "operator"):
        ctx = as_user(app, role)
        try:
            with pytest.raises(Forbidden):
                admin_users.save_user(1, "intruder", "long-enough-pw", "admin")
        finally:
            ctx.pop()
    assert users.get("intruder") is None
    ctx = as_user(app, "admin")
    try:
        result, table = admin_users.save_user(1, "alice", "long-enough-pw", "operator")
        assert result.id == "admin_users-ok" and users.get("alice").role == "operator"
        result, _ = admin_users.save_user(1, "alice", None, "viewer")
        assert users.get("alice").role == "viewer"
        result, _ = admin_users.save_user(1, "bob", "short", "viewer")
        assert result.id == "admin_users-error" and "at least 10" in result.children
        assert page("admin_users").layout().children[0].children == "Users and roles"
    finally:
        ctx.pop()
    ctx = as_user(app, "viewer")
    try:
        assert page("admin_users").layout().id == "admin_users-forbidden"
    finally:
        ctx.pop()


def test_operator_text_is_rendered_as_text(viewer):
    # Component children are strings that React renders as text; nothing in the console uses
    # dangerously_allow_html or raw HTML markdown.
    import pathlib

    root = pathlib.Path(page("floor").__file__).parents[1]
    for src in root.rglob("*.py"):
        text = src.read_text()
        assert "dangerously_allow_html=True" not in text, src
        assert "dangerouslySetInnerHTML" not in text, src


def test_floor_figure_rejects_unknown_colouring():
    import pandas as pd

    with pytest.raises(ValueError, match="cannot colour racks by 'x'"):
        floor_figure(pd.DataFrame(), "x")
    assert set(COLOUR_BY) == {"inlet", "power", "hottest", "alarm"}


def test_figures_are_valid_plotly(viewer):
    import pandas as pd
    import plotly.graph_objects as go

    from dcops.console import data_series
    from dcops.console.figures import empty_figure, timeseries_figure, trend_figure, vendor_bars

    ctx = viewer.server.config["DCOPS_CONSOLE"]
    table = data_series.fleet_table(ctx)
    _, frame = data_series.device_series(ctx, "R1-01", "1h")
    for fig in (vendor_bars(table, "power_w", "Power", "W"), timeseries_figure(frame, "rack_power_w", "p", "W"),
                trend_figure(data_series.fleet_trends(ctx, "1h"), "accel_power_w", "t", "W"), empty_figure("x"),
                timeseries_figure(pd.DataFrame(), "x", "x", "")):
        go.Figure(fig)
    bars = vendor_bars(table, "power_w", "Power", "W")
    assert bars["data"][0]["marker"]["color"][0] == "#76b900"
    assert bars["data"][0]["x"] == [str(m) for m in table["model"]]  # whole model names, not "nvidia H..."
    trends = trend_figure(data_series.fleet_trends(ctx, "1h"), "accel_power_w", "t", "W")
    for tr in trends["data"]:  # the same vendor colour as the bars
        if tr["name"] == "nvidia":
            assert tr["line"]["color"] == "#76b900"
    line = timeseries_figure(frame, "rack_inlet_temp_degc", "inlet", "degC")
    assert line["data"][0]["y"] == [33.0] * len(frame)


def test_colour_scales_are_explicit_for_plotly_js():
    # plotly.js does not know plotly.py's named scales such as "RdYlBu_r": send the stops.
    for key, spec in COLOUR_BY.items():
        assert isinstance(spec.colorscale, list) and spec.colorscale[0][0] == 0.0, key


def test_incident_pickers_preselect_the_next_action():
    import pytest
    from dash.exceptions import PreventUpdate

    from dcops.console.pages.incident import default_choice

    runbooks = [{"label": "crac-failure: CRAC failure", "value": "crac-failure"}]
    assert default_choice(runbooks, None) == "crac-failure"
    with pytest.raises(PreventUpdate):
        default_choice(runbooks, "crac-failure")  # the operator's choice stays
    steps = [{"label": "notify (done)", "value": "notify"}, {"label": "check-inlet (pending)", "value": "check-inlet"}]
    assert default_choice(steps, None) == "check-inlet"
    assert default_choice([], "gone") is None


def test_step_picker_moves_to_the_next_unfinished_step():
    import pytest
    from dash.exceptions import PreventUpdate

    from dcops.console.pages.incident import next_step_choice

    steps = [{"label": "a (done)", "value": "a"}, {"label": "b (skipped)", "value": "b"},
             {"label": "c (failed)", "value": "c"}, {"label": "d (pending)", "value": "d"}]
    assert next_step_choice(steps, None) == "c"
    assert next_step_choice(steps, "a") == "c"  # the step just finished: on to the next
    with pytest.raises(PreventUpdate):
        next_step_choice(steps, "d")  # the operator's choice of an unfinished step stays
    assert next_step_choice([{"label": "a (done)", "value": "a"}], "a") is None


def test_runbook_step_controls_follow_type_state_and_role():
    from dcops.console.runbook_view import allowed_actions

    assert allowed_actions("manual", "pending", False, "operator") == ("confirm", "skip")
    assert allowed_actions("check", "failed", False, "admin") == ("check", "skip")
    assert allowed_actions("action", "pending", False, "operator") == ("execute", "skip")
    assert allowed_actions("action", "pending", True, "operator") == ("request_approval", "skip")
    assert allowed_actions("action", "awaiting_approval", True, "operator") == ("approve", "skip")
    assert allowed_actions("action", "approved", True, "operator") == ("execute", "skip")
    assert allowed_actions("action", "running", False, "operator") == ("skip",)
    assert allowed_actions("manual", "done", False, "operator") == ()
    assert allowed_actions("manual", "pending", False, "viewer") == ()
    assert allowed_actions("manual", "pending", False, None) == ()


def test_wallboard_rotates_between_floor_and_incidents():
    from dcops.console.pages.wallboard import view_for

    # 15 s per view at a 5 s refresh: three ticks of floor, three of incidents, and round again
    assert [view_for(t, 5.0, 15.0, None) for t in range(7)] == ["floor"] * 3 + ["incidents"] * 3 + ["floor"]
    assert view_for(4, 5.0, 15.0, "floor") == "floor"  # pinned
    assert view_for(0, 1.0, 0.5, None) == "floor" and view_for(1, 1.0, 0.5, None) == "incidents"


def test_every_app_gets_its_own_page_callbacks(filled_store, small_inventory, users):
    """Apps built one after another in a process (and in another thread) each bind the page
    callbacks at build time, through the public request hooks, not on their first request."""
    import threading

    from dcops.console.app import create_app
    from dcops.console.auth import Auth

    first = create_app(filled_store, small_inventory, auth=Auth(users))
    second = create_app(filled_store, small_inventory, auth=Auth(users))
    built = []
    t = threading.Thread(target=lambda: built.append(create_app(filled_store, small_inventory, auth=Auth(users))))
    t.start()
    t.join()
    keys = [set(app.callback_map) for app in (first, second, built[0])]
    assert keys[0] and keys[0] == keys[1] == keys[2]
    assert any("devices-grid.rowData" in k for k in keys[0])
