"""A whole incident, from an injected fault to closed, driven through its runbook.

The simulator runs the small site; every step goes to a DuckDB store and through the alerting
pipeline (`dcops.alerts.pipeline.AlertPipeline`), which raises the alarm and opens the incident. The
operator works the CRAC-failure runbook: check steps read the real telemetry (the unit-running
check fails while the CRAC is down and passes after it is back), the action runs an allow-listed
command, expected alarms are silenced during the run, and the incident is closed at the end.
"""

from __future__ import annotations

import pytest

from dcops.alerts.storage.audit import AuditLog
from dcops.alerts.storage.tables import open_engine
from dcops.alerts.storage.repository import Repository
from dcops.alerts.runbooks.engine import PermissionDenied, RunbookEngine, StepNotReady
from dcops.alerts.runbooks.executors import ExecutorConfig, ExecutorRuntime
from dcops.alerts.runbooks.loader import load_runbooks
from dcops.alarm_types import IncidentState, TimelineKind
from tests.runbooks.support import NS, SiteDriver


@pytest.mark.slow
def test_crac_failure_from_fault_to_closed(db_url, small_site):
    db = open_engine(db_url)
    site = SiteDriver(small_site, db, seed=3)
    clock = site.now_ns
    repo = Repository(db, site.sim.inventory, clock=lambda: clock() / NS)
    cfg = ExecutorConfig(allowed_commands={"notify_facilities": ("/bin/echo", "ticket: {component} down in {zone}")})
    eng = RunbookEngine(db, load_runbooks(), inventory=site.sim.inventory, store=site.store,
                        executors=ExecutorRuntime(cfg), repository=repo, clock=clock)
    eng.ensure_schema()

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
    v = eng.execute(run.id, "notify-facilities", user="alice", role="operator")
    assert v.step("notify-facilities").output["output"] == "ticket: CRAC-1 down in Z1"
    eng.confirm(run.id, "remote-restart", user="alice", role="operator", note="restart tripped again; HVAC on the way")

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
    assert runbook_events == ["started", "confirmed", "confirmed", "action_started", "action_succeeded", "confirmed",
                              "check_failed", "check_passed", "check_passed", "signed_off"]
    kinds = [e.kind for e in inc.timeline]
    assert kinds.index(TimelineKind.ALARM_RAISED) < kinds.index(TimelineKind.RUNBOOK) < len(kinds) - 1
    assert inc.timeline[-1].kind is TimelineKind.STATE and inc.timeline[-1].data["state"] == "closed"
    audit = AuditLog(db)
    assert audit.verify().ok and len(audit.records(target_id=run.id)) == len(runbook_events)
    db.dispose()
