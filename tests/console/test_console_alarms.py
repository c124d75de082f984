"""Alarms, Incidents and the runbook panel over the alerts stage's Repository and RunbookEngine,
with alarms raised by the real alert pipeline from the simulator (CRAC failure, XID 79)."""

from __future__ import annotations

import importlib
import json

import pytest
from werkzeug.exceptions import Forbidden

from dcops.console import data, data_alarms
from tests.console.support import HOST, PASSWORDS, login

BASE = f"http://{HOST}"


def page(name):
    return importlib.import_module(f"dcops.console.pages.{name}")


class signed_in:
    def __init__(self, app, name):
        self.app, self.name = app, name

    def __enter__(self):
        import flask

        self.rc = self.app.server.test_request_context("/", base_url=BASE)
        self.rc.push()
        flask.g.dcops_user = self.app.server.config["DCOPS_AUTH"].users.verify(self.name, PASSWORDS[self.name])
        return data.current()

    def __exit__(self, *exc):
        self.rc.pop()


def crac_incident(repo):
    return next(i for i in repo.list_incidents() if i.root_component == "CRAC-1")


def test_floor_colours_by_alarm_and_counts_incidents(alarm_app):
    with signed_in(alarm_app, "viewer") as ctx:
        snap = data.floor_snapshot(ctx)
        rank = snap.racks["alarm_rank"]
        assert rank["R2-01"] == 4  # XID 79 on one of its GPUs: critical
        assert rank["R1-01"] >= 3 and rank["R1-02"] >= 3  # CRAC-1 cools row R1: its racks show the alarm
        assert snap.incidents_by_severity["critical"] >= 1 and snap.incidents_by_severity["major"] >= 1
        layout = page("floor").layout()
        radio = layout.children[3].children[0].children[0].children[1]
        assert "alarm" in [o["value"] for o in radio.options]
        fig, *_ = page("floor").update_floor(1, "alarm")
        assert fig["data"][0]["z"][1][0] == 4


def test_alarm_list_filters_and_folds_symptoms(alarm_app):
    with signed_in(alarm_app, "viewer") as ctx:
        rows, causes = page("alarms").refresh_alarms(1, "", "", "", "", True, None)
        comps = {r["component"] for r in rows}
        assert {"CRAC-1", "R2-01-S01:2"} <= comps
        assert all(r["role"] != "symptom" for r in rows)
        all_rows, _ = page("alarms").refresh_alarms(1, "", "", "", "", False, None)
        assert len(all_rows) >= len(rows)
        crit, _ = page("alarms").refresh_alarms(1, "critical", "", "", "", True, None)
        assert {r["severity"] for r in crit} == {"critical"}
        r2, _ = page("alarms").refresh_alarms(1, "", "R2", "", "", True, None)
        assert "R2-01-S01:2" in {r["component"] for r in r2} and "CRAC-1" not in {r["component"] for r in r2}
        assert "equipmentMalfunction" in [c["value"] for c in causes]
        only, _ = page("alarms").refresh_alarms(1, "", "", "equipmentMalfunction", "", True, None)
        assert {r["cause"] for r in only} == {"equipmentMalfunction"}
        txt, _ = page("alarms").refresh_alarms(1, "", "", "", "does not answer", True, None)
        assert [r["component"] for r in txt] == ["R2-01-S01:2"]
        assert data_alarms.silence_matchers(ctx.alarms.get_alarm(txt[0]["id"])) == [
            'component="R2-01-S01:2"', 'probable_cause="equipmentMalfunction"']


def test_operator_acknowledges_and_silences_viewer_refused(alarm_app):
    alarms = page("alarms")
    repo = alarm_app.server.config["DCOPS_CONSOLE"].alarms
    xid = next(a for a in repo.list_alarms() if a.component == "R2-01-S01:2")
    with signed_in(alarm_app, "viewer"):
        with pytest.raises(Forbidden):
            alarms.acknowledge(1, [{"id": xid.id}])
        with pytest.raises(Forbidden):
            alarms.silence(1, [{"id": xid.id}], "1 hour", "maintenance")
        assert alarms.layout().children[2].children[0].children.disabled is True
    assert repo.get_alarm(xid.id).acknowledged_by is None
    with signed_in(alarm_app, "operator"):
        assert alarms.acknowledge(1, []).id == "alarms-error"
        ok = alarms.acknowledge(1, [{"id": xid.id}])
        assert ok.id == "alarms-ok"
        assert alarms.silence(1, [{"id": xid.id}], "1 hour", "  ").id == "alarms-error"
        assert alarms.silence(1, [{"id": xid.id}], "1 hour", "GPU swap planned").id == "alarms-ok"
    assert repo.get_alarm(xid.id).acknowledged_by == "operator"
    sil = repo.list_silences()
    assert len(sil) == 1 and sil[0].author == "operator" and sil[0].reason == "GPU swap planned"
    assert {a["action"] for a in repo.operator_actions()} >= {"ack_alarm", "silence"}


def test_viewer_direct_post_to_acknowledge_is_refused(alarm_app):
    repo = alarm_app.server.config["DCOPS_CONSOLE"].alarms
    xid = next(a for a in repo.list_alarms() if a.component == "R2-01-S01:2")
    payload = {"output": "alarms-result.children@" + "x", "outputs": {"id": "alarms-result", "property": "children",
                                                                    "allow_duplicate": True},
               "inputs": [{"id": "alarms-ack", "property": "n_clicks", "value": 1}],
               "changedPropIds": ["alarms-ack.n_clicks"],
               "state": [{"id": "alarms-grid", "property": "selectedRows", "value": [{"id": xid.id}]}]}
    # the browser names duplicate-allowed outputs with a hash suffix; take it from the dependencies
    viewer = login(alarm_app, "viewer")
    deps = json.loads(viewer.get("/_dash-dependencies", base_url=BASE).data)
    payload["output"] = next(d["output"] for d in deps if d["inputs"][0]["id"] == "alarms-ack")
    r = viewer.post("/_dash-update-component", data=json.dumps(payload), content_type="application/json",
                    headers={"Origin": BASE}, base_url=BASE)
    assert r.status_code == 403
    assert repo.get_alarm(xid.id).acknowledged_by is None
    op = login(alarm_app, "operator")
    r = op.post("/_dash-update-component", data=json.dumps(payload), content_type="application/json",
                headers={"Origin": BASE}, base_url=BASE)
    assert r.status_code == 200, r.data[:300]
    assert repo.get_alarm(xid.id).acknowledged_by == "operator"


def test_incident_list_and_detail(alarm_app):
    repo = alarm_app.server.config["DCOPS_CONSOLE"].alarms
    inc = crac_incident(repo)
    with signed_in(alarm_app, "viewer"):
        rows = page("incidents").incidents_rows(1, True, None)
        row = next(r for r in rows if r["id"] == inc.id)
        assert row["root"] == "CRAC-1" and row["link"] == f"[{inc.id}](/incident/{inc.id})"
        header, alarms, charts, timeline, notifications = page("incident").render_incident(1, inc.id, None)
        assert header.children[0].children == inc.title
        assert "root cause" in str(alarms) and "CRAC-1" in str(alarms)
        assert len(charts) == 3  # cooling unit metrics around the incident
        assert "alarm_raised" in str(timeline)
        missing = page("incident").render_incident(1, "nope", None)[0]
        assert missing.id == "incident-missing"


def test_incident_state_notes_and_roles(alarm_app):
    repo = alarm_app.server.config["DCOPS_CONSOLE"].alarms
    inc = crac_incident(repo)
    incident = page("incident")
    with signed_in(alarm_app, "viewer"):
        with pytest.raises(Forbidden):
            incident.set_state(1, inc.id, "acknowledged", "")
        with pytest.raises(Forbidden):
            incident.add_note(1, inc.id, "hello")
    with signed_in(alarm_app, "operator"):
        assert incident.set_state(1, inc.id, "acknowledged", "on it").id == "incident-ok"
        assert incident.add_note(1, inc.id, "<b>handover</b>: HVAC called").id == "incident-ok"
        assert incident.add_note(1, inc.id, "  ").id == "incident-error"
        _, _, _, timeline, _ = incident.render_incident(1, inc.id, None)
        assert "<b>handover</b>: HVAC called" in str(timeline)  # kept as text, rendered escaped by React
        assert incident.set_state(1, inc.id, "resolved", "unit back").id == "incident-ok"
        bad = incident.set_state(1, inc.id, "mitigating", "")
        assert bad.id == "incident-error" and "can go to" in bad.children
    got = repo.get_incident(inc.id)
    assert got.state.value == "resolved" and got.acknowledged_by == "operator"


def test_runbook_driven_to_sign_off(alarm_app):
    repo = alarm_app.server.config["DCOPS_CONSOLE"].alarms
    inc = crac_incident(repo)
    incident = page("incident")
    with signed_in(alarm_app, "viewer"):
        view, picks, steps = incident.render_runbook(1, inc.id, None)
        assert view.id == "incident-runbook-none" and "crac-failure" in [p["value"] for p in picks]
        with pytest.raises(Forbidden):
            incident.start_runbook(1, inc.id, "crac-failure")
    with signed_in(alarm_app, "operator"):
        assert incident.start_runbook(1, inc.id, "crac-failure").id == "incident-ok"
        view, _, steps = incident.render_runbook(1, inc.id, None)
        assert "read-unit-panel" in [s["value"] for s in steps]
        early = incident.run_step(inc.id, "confirm", "remote-restart", "too early")
        assert early.id == "incident-error"
        assert incident.run_step(inc.id, "confirm", "read-unit-panel", "code E42").id == "incident-ok"
        assert incident.run_step(inc.id, "skip", "peers-running", "").id == "incident-error"  # reason required
        assert incident.run_step(inc.id, "skip", "peers-running", "BMS down").id == "incident-ok"
        view, _, _ = incident.render_runbook(1, inc.id, None)
        assert "code E42" in str(view) and "skipped" in str(view)


def _shown(styles, actions):
    return {a for a, st in zip(actions, styles) if st != {"display": "none"}}


def test_runbook_step_panel_shows_instruction_impact_and_only_allowed_controls(alarm_app):
    repo = alarm_app.server.config["DCOPS_CONSOLE"].alarms
    inc = crac_incident(repo)
    incident = page("incident")
    acts = incident.STEP_ACTIONS
    with signed_in(alarm_app, "operator"):
        # before any runbook has started: no step controls at all
        out = incident.step_panel("read-unit-panel", [], inc.id)
        assert all(st == {"display": "none"} for st in out[1:])
        incident.start_runbook(1, inc.id, "crac-failure")
        out = incident.step_panel("read-unit-panel", [], inc.id)
        detail, styles, signoff, row = out[0], out[1:1 + len(acts)], out[-2], out[-1]
        text = str(detail)
        assert "Read the fault code on the unit's local panel or in the BMS" in text  # the YAML instruction
        assert "Impact:" in text and "Expected result:" in text
        assert "None (read only)." in text and "A fault code noted" in text  # the step's own impact and expected
        assert _shown(styles, acts) == {"confirm", "skip"} and signoff == {"display": "none"} and row == {}
        styles = incident.step_panel("caps-hold", [], inc.id)[1:1 + len(acts)]
        assert _shown(styles, acts) == {"check", "skip"}
        out = incident.step_panel("cap-zone", [], inc.id)
        assert _shown(out[1:1 + len(acts)], acts) == {"request_approval", "skip"}  # destructive: four eyes
        assert "Changes service" in str(out[0]) and "second person" in str(out[0])
        assert "accel_power_w on every rack under 560" in str(incident.step_panel("caps-hold", [], inc.id)[0])
    with signed_in(alarm_app, "viewer"):
        out = incident.step_panel("read-unit-panel", [], inc.id)
        assert _shown(out[1:1 + len(acts)], acts) == set()  # viewers read the instruction, act on nothing
        assert "Read the fault code" in str(out[0])


def test_history_page(alarm_app):
    repo = alarm_app.server.config["DCOPS_CONSOLE"].alarms
    inc = crac_incident(repo)
    history = page("history")
    with signed_in(alarm_app, "operator"):
        page("incident").set_state(1, inc.id, "acknowledged", "")
        kpis, trend, timeline, offenders = history.update_history(1, "7d")
        assert kpis[0].children.children.children[1].children == str(len(repo.list_incidents()))
        assert kpis[1].children.children.children[1].children.endswith("min")  # one acknowledged: MTTA known
        assert "CRAC-1" in timeline["data"][0]["y"]
        assert offenders.id == "history-offenders-none"  # one incident per component: no recurring offender
        other = next(i for i in repo.list_incidents() if i.id != inc.id)
        none = history.find_similar(1, other.id, "7d")
        assert none.id in ("history-similar-none", "history-similar-table")
        assert history.find_similar(1, "nope", "7d").id == "history-error"
        dl = history.export_postmortem(1, inc.id)
        assert dl["filename"] == f"postmortem-{inc.id}.md"
        assert dl["content"].startswith(f"# Postmortem: {inc.title}") and "| root cause | major | CRAC-1 |" in dl["content"]


def test_similar_incidents_and_escaped_postmortem(alarm_app):
    from dcops.console import data_alarms

    repo = alarm_app.server.config["DCOPS_CONSOLE"].alarms
    inc = crac_incident(repo)
    with signed_in(alarm_app, "operator") as ctx:
        again = repo.open_incident("CRAC-1 again", user="operator", alarm_ids=[])
        repo.add_note(inc.id, "operator", "<img src=x onerror=alert(1)> | pipe")
        hist = data_alarms.incident_history(ctx, 7)
        hist.loc[hist["id"] == again.id, "root"] = "CRAC-1"  # same component, as the alerter would record
        similar = data_alarms.similar_incidents(ctx, inc.id, hist)
        assert list(similar["id"]) == [again.id] and similar.at[0, "why"] == "same component"
        md = data_alarms.postmortem_markdown(ctx, inc.id)
        assert "<img" not in md and "&lt;img src=x onerror=alert(1)&gt; \\| pipe" in md


def test_admin_silences_maintenance_and_audit(alarm_app):
    admin = page("admin")
    repo = alarm_app.server.config["DCOPS_CONSOLE"].alarms
    with signed_in(alarm_app, "operator"):
        with pytest.raises(Forbidden):
            admin.create_maintenance(1, "CRAC-2", "4 hours", "filter change")
        assert admin.layout().id == "admin-forbidden"
    with signed_in(alarm_app, "admin"):
        assert admin.create_maintenance(1, "NOPE", "4 hours", "x").id == "admin-error"
        assert admin.create_maintenance(1, "CRAC-2", "4 hours", "").id == "admin-error"  # reason required
        ok = admin.create_maintenance(1, "CRAC-2", "4 hours", "filter change")
        assert ok.id == "admin-ok"
        silences, audit, chain = admin.render_admin(1, None)
        assert "CRAC-2" in str(silences) and "filter change" in str(silences)
        assert "maintenance" in str(audit) and "admin" in str(audit)
        assert chain.id == "admin-audit-chain-state" and "intact" in chain.children
        assert "operator actions, runbook steps" in chain.children
        assert silences[0]["kind"] == "maintenance window" and silences[0]["what"] == "CRAC-2"
        mw = repo.list_silences()[0]
        assert admin.expire(1, []).id == "admin-error"
        assert admin.expire(1, [{"id": mw.id}]).id == "admin-ok"
    assert repo.list_silences() == []


def test_admin_shows_receivers_routes_and_on_call_without_secrets(alarm_app):
    from dcops.alerts.config import alerting_from_text

    admin = page("admin")
    ctx = alarm_app.server.config["DCOPS_CONSOLE"]
    with signed_in(alarm_app, "admin"):
        assert "No alerting configuration" in str(admin.layout())
    alerting = alerting_from_text("""
receivers:
  - {name: noc, type: webhook, url: "https://noc.example.net/hook", secret: "TOPSECRET"}
  - {name: pd, type: pagerduty, routing_key: "PDKEY"}
route: {receiver: noc, routes: [{matchers: ['kind="cooling"'], receiver: pd}]}
users: {alice: {receivers: [pd]}}
schedules: [{name: primary, rotation: {users: [alice], start: "2026-01-05T09:00:00+00:00"}}]
""")
    object.__setattr__(ctx, "alerting", alerting)
    with signed_in(alarm_app, "admin"):
        text = str(admin.layout())
    assert "https://noc.example.net/hook" in text and "HMAC-SHA256" in text and 'kind="cooling"' in text
    assert "admin-oncall" in text and "alice" in text
    assert "TOPSECRET" not in text and "PDKEY" not in text


def test_devices_page_lists_component_alarms(alarm_app):
    devices = page("devices")
    with signed_in(alarm_app, "viewer"):
        *_, alarms = devices.show_device("R2-01-S01:2", "1h", 0)
        assert alarms.id == "devices-alarms-table" and "does not answer" in str(alarms)
        *_, rack_alarms = devices.show_device("R2-01", "1h", 0)
        assert "R2-01-S01:2" in str(rack_alarms)  # what is inside the rack
        *_, none = devices.show_device("R2-03", "1h", 0)
        assert none.id == "devices-alarms-none"


def test_destructive_step_needs_a_second_persons_approval(alarm_app):
    repo = alarm_app.server.config["DCOPS_CONSOLE"].alarms
    eng = alarm_app.server.config["DCOPS_CONSOLE"].runbooks
    inc = next(i for i in repo.list_incidents() if i.root_component == "R2-01-S01:2")
    incident = page("incident")
    with signed_in(alarm_app, "operator"):
        assert incident.start_runbook(1, inc.id, "gpu-xid79").id == "incident-ok"
        assert incident.run_step(inc.id, "confirm", "collect-logs", "logs attached").id == "incident-ok"
        refused = incident.run_step(inc.id, "execute", "drain", "")
        assert refused.id == "incident-error"  # destructive: approval first
        assert incident.run_step(inc.id, "request_approval", "drain", "drain R2-01-S01").id == "incident-ok"
        own = incident.run_step(inc.id, "approve", "drain", "")
        assert own.id == "incident-error"  # not by the requester
    with signed_in(alarm_app, "viewer"):
        with pytest.raises(Forbidden):
            incident.run_step(inc.id, "approve", "drain", "")
    with signed_in(alarm_app, "admin"):
        assert incident.run_step(inc.id, "approve", "drain", "ok").id == "incident-ok"
    step = eng.runs(inc.id)[-1].step("drain")
    assert step.status == "approved" and step.requested_by == "operator" and step.approved_by == "admin"
    with signed_in(alarm_app, "operator"):
        result = incident.run_step(inc.id, "execute", "drain", "")
    # no drain command is configured on this site: the attempt is recorded, not silently dropped
    assert result.id in ("incident-ok", "incident-error")
    assert eng.runs(inc.id)[-1].step("drain").attempts == 1


def test_note_on_selected_alarms_goes_to_their_incident(alarm_app):
    alarms = page("alarms")
    repo = alarm_app.server.config["DCOPS_CONSOLE"].alarms
    xid = next(a for a in repo.list_alarms() if a.component == "R2-01-S01:2")
    with signed_in(alarm_app, "viewer"):
        with pytest.raises(Forbidden):
            alarms.add_note(1, [{"id": xid.id}], "x")
    with signed_in(alarm_app, "operator"):
        assert alarms.add_note(1, [{"id": xid.id}], "  ").id == "alarms-error"
        assert alarms.add_note(1, [{"id": xid.id}], "GPU swap at 14:00").id == "alarms-ok"
    notes = [e for e in repo.get_incident(xid.incident_id).timeline if e.text == "GPU swap at 14:00"]
    assert len(notes) == 1 and notes[0].actor == "operator"


def test_incidents_acknowledged_from_the_list_by_operators_only_and_audited(alarm_app):
    repo = alarm_app.server.config["DCOPS_CONSOLE"].alarms
    inc = crac_incident(repo)
    incidents = page("incidents")
    with signed_in(alarm_app, "viewer"):
        with pytest.raises(Forbidden):
            incidents.acknowledge(1, [{"id": inc.id}], "")
    assert repo.get_incident(inc.id).acknowledged_by is None
    with signed_in(alarm_app, "operator"):
        assert incidents.acknowledge(1, [], "").id == "incidents-error"
        ok = incidents.acknowledge(1, [{"id": inc.id}], "on it")
        assert ok.id == "incidents-ok" and "acknowledged 1 incident" in str(ok.children)
        again = incidents.acknowledge(1, [{"id": inc.id}], "")
        assert again.id == "incidents-error" and "not open" in str(again.children)
        rows = incidents.incidents_rows(1, True, None)
    assert repo.get_incident(inc.id).acknowledged_by == "operator"
    assert next(r for r in rows if r["id"] == inc.id)["acknowledged_by"] == "operator"
    assert any(a["action"] == "incident_state" or "acknowledged" in str(a) for a in repo.operator_actions())


def test_one_severity_palette_on_floor_grid_and_badges(alarm_app):
    from dcops.console import severity
    from dcops.console.figures import floor_figure

    with signed_in(alarm_app, "viewer") as ctx:
        snap = data.floor_snapshot(ctx)
        badges = page("floor").incidents_badges(snap)
    major = next(b for b in badges if getattr(b, "id", None) == "floor-incidents-major")
    assert major.style["backgroundColor"] == severity.COLOURS["major"] and major.children.startswith("major ")
    grid_major = next(c for c in page("alarms").SEVERITY_STYLE["styleConditions"] if "'major'" in c["condition"])
    assert grid_major["style"]["backgroundColor"] == severity.COLOURS["major"]
    fig = floor_figure(snap.racks, "alarm")
    bar = fig["data"][0]["colorbar"]
    assert bar["ticktext"] == ["none", "warning", "minor", "major", "critical"] and bar["tickvals"] == [0, 1, 2, 3, 4]
    # each level sits in its own flat band of the scale: the colour of z = 3 is exactly "major"
    scale, lo, hi = fig["data"][0]["colorscale"], fig["data"][0]["zmin"], fig["data"][0]["zmax"]
    pos = (3 - lo) / (hi - lo)
    below = [c for p, c in scale if p <= pos][-1]  # the stop in force at z = 3 ...
    above = next(c for p, c in scale if p >= pos)  # ... and the next one: no blend between them
    assert below == above == severity.COLOURS["major"]
    assert severity.rank("critical") > severity.rank("major") > severity.rank("minor") > severity.rank("warning")
    inlet = floor_figure(snap.racks, "inlet")["data"][0]
    assert inlet["texttemplate"] == "%{text}<br>%{z:.1f}"  # the value on the cell, not colour alone


def test_wallboard_shows_floor_and_open_incidents_worst_first(alarm_app):
    repo = alarm_app.server.config["DCOPS_CONSOLE"].alarms
    wall = page("wallboard")
    with signed_in(alarm_app, "viewer") as ctx:
        body, name, _ = wall.render(0, {"rotate_s": 15, "pin": None})
        assert name == "Floor" and "wallboard-kpi-it" in str(body) and "wallboard-floor" in str(body)
        body, name, _ = wall.render(0, {"rotate_s": 15, "pin": "incidents"})
        assert name == "Open incidents"
        titles = [r.children[1].children for r in body[0].children[1].children]
        sevs = [r.children[0].children.children for r in body[0].children[1].children]
    open_titles = {i.title for i in repo.list_incidents() if str(getattr(i.state, "value", i.state)) in ("open", "acknowledged", "mitigating")}
    assert set(titles) == open_titles
    assert sevs == sorted(sevs, key=["critical", "major", "minor", "warning", "indeterminate"].index)


def test_recurring_offenders_need_two_incidents():
    import pandas as pd

    hist = pd.DataFrame({"id": ["a", "b", "c", "d"], "root": ["CRAC-1", "CRAC-1", "PDU-2", ""],
                         "opened_ns": [1, 2, 3, 4]})
    off = data_alarms.recurring_offenders(hist)
    assert off["root"].tolist() == ["CRAC-1"] and off["incidents"].tolist() == [2]


def test_incident_impact_lists_the_accelerators_behind_the_root(alarm_app):
    from dcops.console import data_impact

    repo = alarm_app.server.config["DCOPS_CONSOLE"].alarms
    inc = crac_incident(repo)
    with signed_in(alarm_app, "viewer") as ctx:
        accels = data_impact.affected_accels(ctx, "CRAC-1")
        # CRAC-1 cools row R1: every accelerator of R1's racks, none of R2's
        assert accels and all(a.startswith("R1-") for a in accels)
        assert set(accels) == {a for a in ctx.inventory.accel_ids if a.startswith("R1-")}
        imp = data_impact.incident_impact(ctx, "CRAC-1", inc.opened_ns)
        assert int(imp["accelerators"].sum()) == len(accels)
        assert list(imp.columns) == data_impact.IMPACT_COLUMNS
        view = page("incident").render_impact(1, inc.id)
        assert f"{len(accels):,} accelerators affected" in str(view)
        assert data_impact.incident_impact(ctx, "nope", inc.opened_ns).empty


def test_incident_impact_counts_the_tokens_a_lost_gpu_no_longer_generates(alarm_app):
    from dcops.console import data_impact

    repo = alarm_app.server.config["DCOPS_CONSOLE"].alarms
    xid = next(i for i in repo.list_incidents() if i.root_component == "R2-01-S01:2")
    with signed_in(alarm_app, "viewer") as ctx:
        imp = data_impact.incident_impact(ctx, xid.root_component, xid.opened_ns)
    assert int(imp["accelerators"].sum()) == 1
    row = imp.iloc[0]
    assert row["tokens_per_s_before"] > 0  # it served inference before XID 79 ...
    assert row["tokens_per_s_now"] == 0 and row["tokens_per_s_lost"] == row["tokens_per_s_before"]  # ... and none now


def test_admin_shows_matchers_as_operators_read_them():
    from dcops.alarm_types import Matcher

    admin = page("admin")
    assert admin.matcher_text(Matcher("component", "=~", r"R1\-01\.S01")) == "component = R1-01.S01"
    assert admin.matcher_text(Matcher("component", "=~", "R1-0[12]")) == "component =~ R1-0[12]"
    assert admin.matcher_text(Matcher("severity", "!=", "warning")) == "severity != warning"


def test_incident_list_ranks_open_incidents_by_impact(alarm_app):
    from dcops.console import data_impact

    repo = alarm_app.server.config["DCOPS_CONSOLE"].alarms
    crac = crac_incident(repo)
    xid = next(i for i in repo.list_incidents() if i.root_component == "R2-01-S01:2")
    with signed_in(alarm_app, "viewer") as ctx:
        rows = {r["id"]: r for r in page("incidents").incidents_rows(0, True, None)}
        n_r1 = len(data_impact.affected_accels(ctx, "CRAC-1"))
        single = data_impact.incident_impact(ctx, xid.root_component, xid.opened_ns)
    assert rows[crac.id]["impact_accels"] == n_r1 and rows[crac.id]["impact_power_kw"] > 0
    assert rows[xid.id]["impact_accels"] == 1
    # the list's figure agrees with the incident page's
    assert rows[xid.id]["impact_tokens_per_s_lost"] == pytest.approx(float(single["tokens_per_s_lost"].sum()), rel=0.05)
    cols = {c["field"]: c for c in page("incidents").COLUMNS}
    assert set(data_impact.RANK_COLUMNS) <= set(cols)
    assert all(cols[c]["filter"] == "agNumberColumnFilter" for c in data_impact.RANK_COLUMNS)
