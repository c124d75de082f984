"""A whole incident, from an injected fault to closed, driven through its runbook.

The simulator runs the small site; every step goes to a DuckDB store and through the alerting
pipeline (`dcops.alerts.pipeline.AlertPipeline`), which raises the alarm and opens the incident. The
operator works the CRAC-failure runbook: check steps read the real telemetry (the unit-running
check fails while the CRAC is down and passes after it is back), the actions run an allow-listed
command and cap the zone's GPUs through the agents' real control API (HTTP, signed tokens,
four-eyes approval) over the simulated GPUs, the rollback restores the limits, expected alarms
are silenced during the run, and the incident is closed at the end.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from waitress.server import create_server

from dcops.alerts.storage.audit import AuditLog
from dcops.alerts.storage.tables import open_engine
from dcops.alerts.storage.repository import Repository
from dcops.alerts.runbooks.engine import PermissionDenied, RunbookEngine, StepNotReady
from dcops.alerts.runbooks.executors import ExecutorConfig, ExecutorRuntime
from dcops.alerts.runbooks.loader import load_runbooks
from dcops.alarm_types import IncidentState, TimelineKind
from dcops.collectors.power_api import ControlApi
from dcops.collectors.sim_agents import SimAgents
from tests.runbooks.support import NS, SiteDriver


@pytest.mark.slow
def test_crac_failure_from_fault_to_closed(db_url, small_site):
    db = open_engine(db_url)
    site = SiteDriver(small_site, db, seed=3)
    clock = site.now_ns
    repo = Repository(db, site.sim.inventory, clock=lambda: clock() / NS)
    api = ControlApi(SimAgents(site.sim).power_controllers(), b"agent-key")   # the agents' control API
    server = create_server(api, host="127.0.0.1", port=0, threads=2)
    threading.Thread(target=server.run, daemon=True).start()
    cfg = ExecutorConfig(allowed_commands={"notify_facilities": ("/bin/echo", "ticket: {component} down in {zone}")},
                         agent_url=f"http://127.0.0.1:{server.effective_port}/hosts/{{server}}",
                         agent_token_key="agent-key")
    eng = RunbookEngine(db, load_runbooks(), inventory=site.sim.inventory, store=site.store,
                        executors=ExecutorRuntime(cfg), repository=repo, clock=clock)
    eng.ensure_schema()
    inv = site.sim.inventory
    z1_gpus = np.array([k for k, aid in enumerate(inv.accel_ids) if inv.accel_tags["vendor"][k] == "nvidia"
                        and inv.get(inv.get(str(aid)).rack).attrs.get("zone") == "Z1"])

    site.step(30)                                    # 5 minutes of normal operation
    assert repo.list_incidents() == []
    label = site.sim.inject("crac_failure", "CRAC-1", duration_s=600)
    site.step(12)                                    # 2 minutes later: alarm raised, incident opened
    [inc] = repo.list_incidents()
    assert inc.root_component == "CRAC-1" and inc.state is IncidentState.OPEN
    assert eng.suggest(inc.id)[0].id == "crac-failure"

    with pytest.raises(PermissionDenied):
        eng.start(inc.id, "crac-failure", user="victor", role="viewer")
    repo.acknowledge_incident(inc.id, "alice")
    run = eng.start(inc.id, "crac-failure", user="alice", role="operator")
    assert run.variables["zone"] == "Z1"
    silenced = [s for s in repo.list_silences() if s.id in run.silence_ids]
    assert {str(m) for s in silenced for m in s.matchers} >= {'row=~"R1"', 'probable_cause="temperatureUnacceptable"'}
    repo.set_incident_state(inc.id, "mitigating", "alice", note="runbook crac-failure started")

    with pytest.raises(StepNotReady):
        eng.confirm(run.id, "remote-restart", user="alice", role="operator", note="too early")
    eng.confirm(run.id, "read-unit-panel", user="alice", role="operator", note="BMS: compressor trip E21")
    eng.confirm(run.id, "peers-running", user="alice", role="operator", note="CRAC-2 running, no alarm")
    v = eng.execute(run.id, "caps-possible", user="alice", role="operator")
    assert v.step("caps-possible").status == "done", v.step("caps-possible").output
    v = eng.execute(run.id, "notify-facilities", user="alice", role="operator")
    assert v.step("notify-facilities").output["output"] == "ticket: CRAC-1 down in Z1"
    eng.confirm(run.id, "remote-restart", user="alice", role="operator", note="restart tripped again; HVAC on the way")
    eng.request_approval(run.id, "cap-zone", user="alice", role="operator", note="inlets at 33 degC")
    eng.approve(run.id, "cap-zone", user="bob", role="operator")                # four eyes
    v = eng.execute(run.id, "cap-zone", user="alice", role="operator")
    assert v.step("cap-zone").status == "done", v.step("cap-zone").output
    assert np.allclose(site.sim.power_limit[z1_gpus], 0.7 * site.sim.a_tdp[z1_gpus])
    site.step(9)                                     # a minute and a half under the cap
    v = eng.check(run.id, "caps-hold", user="alice", role="operator")
    assert v.step("caps-hold").status == "done", v.step("caps-hold").output

    v = eng.check(run.id, "unit-running", user="alice", role="operator")     # CRAC still down
    st = v.step("unit-running")
    assert st.status == "failed" and st.output["worst"] == 0.0 and "does not hold" in st.output["summary"]

    site.step(60)                                    # the fault ends (10 min after injection), 2+ min of recovery
    assert site.sim.labels[0].end_ns is not None and site.sim.labels[0].fault_id == label.fault_id
    v = eng.check(run.id, "unit-running", user="alice", role="operator")
    assert v.step("unit-running").status == "done", v.step("unit-running").output
    v = eng.check(run.id, "inlets-recovered", user="alice", role="operator")
    st = v.step("inlets-recovered")
    assert st.status == "done", st.output
    assert set(st.output["components"]) == {"R1-01", "R1-02", "R1-03"} and st.output["worst"] < 27
    v = eng.execute(run.id, "remove-caps", user="alice", role="operator")        # rollback: limits restored
    assert v.step("remove-caps").status == "done", v.step("remove-caps").output
    assert np.allclose(site.sim.power_limit[z1_gpus], site.sim.a_tdp[z1_gpus])
    v = eng.sign_off(run.id, user="bob", role="operator", note="HVAC replaced the contactor")
    assert v.state == "completed"
    assert not {s.id for s in repo.list_silences()} & set(run.silence_ids)   # expected-alarm silences ended

    site.step(6)
    inc = repo.get_incident(inc.id)
    if inc.state is not IncidentState.RESOLVED:
        inc = repo.set_incident_state(inc.id, "resolved", "bob")
    inc = repo.set_incident_state(inc.id, "closed", "bob", note="postmortem scheduled")
    assert inc.state is IncidentState.CLOSED

    inc = repo.get_incident(inc.id)
    runbook_events = [e.data["event"] for e in inc.timeline if e.kind is TimelineKind.RUNBOOK]
    assert runbook_events == ["started", "confirmed", "confirmed", "action_started", "action_succeeded",
                              "action_started", "action_succeeded", "confirmed", "action_requested", "approved",
                              "action_started", "action_succeeded", "check_passed", "check_failed", "check_passed",
                              "check_passed", "action_started", "action_succeeded", "signed_off"]
    kinds = [e.kind for e in inc.timeline]
    assert kinds.index(TimelineKind.ALARM_RAISED) < kinds.index(TimelineKind.RUNBOOK) < len(kinds) - 1
    assert inc.timeline[-1].kind is TimelineKind.STATE and inc.timeline[-1].data["state"] == "closed"
    audit = AuditLog(db)
    assert audit.verify().ok and len(audit.records(target_id=run.id)) == len(runbook_events)
    server.close()
    db.dispose()
