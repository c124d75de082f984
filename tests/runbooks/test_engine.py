"""Runbook runs: roles, step order, two-person approval of destructive actions, sign-off, and
that everything lands on the incident timeline and in the audit log. SQLite and PostgreSQL."""

from __future__ import annotations

import sys

import pytest

from dcops.alerts.storage.audit import AuditLog
from dcops.alerts.storage.tables import open_engine
from dcops.alerts.storage.repository import Repository
from dcops.alerts.runbooks.engine import ApprovalRequired, PermissionDenied, RunbookEngine, RunbookError, StepNotReady
from dcops.alerts.runbooks.executors import ExecutorConfig, ExecutorRuntime
from dcops.alerts.runbooks.loader import load_runbooks
from dcops.alarm_types import PerceivedSeverity, ProbableCause, TimelineKind
from tests.runbooks.support import NS, make_incident

T0 = 1_700_000_000 * NS


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> int:
        self.t += NS
        return self.t


@pytest.fixture
def setup(db_url, small_inventory, tmp_path):
    db = open_engine(db_url)
    marker = tmp_path / "drained.txt"
    cfg = ExecutorConfig(
        drain_command=(sys.executable, "-c", f"open({str(marker)!r}, 'a').write('{{server}}\\n'); print('drained {{server}}')"),
        allowed_commands={"uncordon": ("/bin/echo", "uncordon {server}")})
    eng = RunbookEngine(db, load_runbooks(), inventory=small_inventory, executors=ExecutorRuntime(cfg), clock=Clock())
    eng.ensure_schema()
    make_incident(db, iid="inc-xid", component="R2-01-S01:2", managed_object="dc1/H1/R2/R2-01/R2-01-S01/2",
                  cause=ProbableCause.EQUIPMENT_MALFUNCTION, severity=PerceivedSeverity.CRITICAL, rule="gpu_xid_fatal",
                  labels={"vendor": "nvidia", "kind": "accel"}, text="XID 79 on R2-01-S01:2: GPU has fallen off the bus",
                  opened_ns=T0)
    yield eng, marker
    db.dispose()


def test_suggests_the_xid79_runbook(setup):
    eng, _ = setup
    assert [rb.id for rb in eng.suggest("inc-xid")][:1] == ["gpu-xid79"]


def test_viewer_reads_but_cannot_act(setup):
    eng, _ = setup
    with pytest.raises(PermissionDenied, match="operator"):
        eng.start("inc-xid", "gpu-xid79", user="val", role="viewer")
    run = eng.start("inc-xid", "gpu-xid79", user="alice", role="operator")
    for call in (lambda: eng.confirm(run.id, "collect-logs", user="val", role="viewer", note="x"),
                 lambda: eng.request_approval(run.id, "drain", user="val", role="viewer"),
                 lambda: eng.approve(run.id, "drain", user="val", role="viewer"),
                 lambda: eng.execute(run.id, "drain", user="val", role="viewer"),
                 lambda: eng.skip(run.id, "collect-logs", user="val", role="viewer", reason="x"),
                 lambda: eng.sign_off(run.id, user="val", role="viewer"),
                 lambda: eng.abort(run.id, user="val", role="viewer", reason="x")):
        with pytest.raises(PermissionDenied):
            call()
    with pytest.raises(PermissionDenied, match="unknown role"):
        eng.confirm(run.id, "collect-logs", user="val", role="root", note="x")
    assert eng.run(run.id).steps[0].status == "pending"  # the viewer changed nothing


def test_destructive_action_needs_a_second_persons_approval(setup):
    eng, marker = setup
    run = eng.start("inc-xid", "gpu-xid79", user="alice", role="operator")
    with pytest.raises(StepNotReady, match="collect-logs"):
        eng.request_approval(run.id, "drain", user="alice", role="operator")
    eng.confirm(run.id, "collect-logs", user="alice", role="operator", note="bug report attached to ticket 42")
    assert run.runbook.step("drain").is_destructive
    with pytest.raises(ApprovalRequired, match="second person"):
        eng.execute(run.id, "drain", user="alice", role="operator")
    eng.request_approval(run.id, "drain", user="alice", role="operator", note="GPU gone, drain before reset")
    with pytest.raises(PermissionDenied, match="cannot approve"):
        eng.approve(run.id, "drain", user="alice", role="admin")          # not even an admin approves their own
    with pytest.raises(ApprovalRequired):
        eng.execute(run.id, "drain", user="alice", role="operator")       # still not approved
    assert not marker.exists()
    eng.approve(run.id, "drain", user="bob", role="operator")
    with pytest.raises(PermissionDenied, match="approved"):
        eng.execute(run.id, "drain", user="bob", role="operator")         # the approver may not execute
    view = eng.execute(run.id, "drain", user="alice", role="operator")
    st = view.step("drain")
    assert st.status == "done" and "drained R2-01-S01" in st.output["output"]
    assert marker.read_text() == "R2-01-S01\n"                             # ran exactly once
    with pytest.raises(StepNotReady, match="already done"):
        eng.execute(run.id, "drain", user="alice", role="operator")
    kinds = [(e.kind, e.user) for e in view.events if e.step_id == "drain"]
    assert kinds == [("action_requested", "alice"), ("approved", "bob"), ("action_started", "alice"),
                     ("action_succeeded", "alice")]


def test_failed_action_consumes_the_approval(setup, small_inventory):
    eng, _ = setup
    eng.executors = ExecutorRuntime(ExecutorConfig(drain_command=("/bin/false",)))
    run = eng.start("inc-xid", "gpu-xid79", user="alice", role="operator")
    eng.skip(run.id, "collect-logs", user="alice", role="operator", reason="node unreachable")
    eng.request_approval(run.id, "drain", user="alice", role="operator")
    eng.approve(run.id, "drain", user="bob", role="operator")
    v = eng.execute(run.id, "drain", user="alice", role="operator")
    assert v.step("drain").status == "failed" and v.step("drain").output["returncode"] == 1
    with pytest.raises(ApprovalRequired):
        eng.execute(run.id, "drain", user="alice", role="operator")


def test_order_skip_reasons_and_sign_off(setup):
    eng, _ = setup
    run = eng.start("inc-xid", "gpu-xid79", user="alice", role="operator")
    with pytest.raises(RunbookError, match="reason"):
        eng.skip(run.id, "collect-logs", user="alice", role="operator", reason="  ")
    with pytest.raises(RunbookError, match="note"):
        eng.confirm(run.id, "collect-logs", user="alice", role="operator", note="")
    with pytest.raises(StepNotReady, match="collect-logs.*pending"):
        eng.sign_off(run.id, user="alice", role="operator")
    eng.confirm(run.id, "collect-logs", user="alice", role="operator", note="saved")
    eng.skip(run.id, "drain", user="alice", role="operator", reason="node already out of the pool")
    eng.confirm(run.id, "reset", user="alice", role="operator", note="nvidia-smi -r ok")
    eng.skip(run.id, "gpu-up", user="alice", role="operator", reason="no telemetry store in this test")
    # rollback steps run in their own order, independent of the flow
    eng.executors = ExecutorRuntime(ExecutorConfig(allowed_commands={"uncordon": ("/bin/echo", "uncordon {server}")}))
    v = eng.execute(run.id, "uncordon", user="alice", role="operator")
    assert v.step("uncordon").output["output"] == "uncordon R2-01-S01"
    v = eng.sign_off(run.id, user="bob", role="operator", note="checked with the serving team")
    assert v.state == "completed" and v.ended_by == "bob"
    with pytest.raises(RunbookError, match="completed"):
        eng.confirm(run.id, "reset", user="alice", role="operator", note="again")
    skipped = {s.id: s.note for s in v.steps if s.status == "skipped"}
    assert skipped == {"drain": "node already out of the pool", "gpu-up": "no telemetry store in this test"}

    inc = Repository(eng.db).get_incident("inc-xid")
    rb_entries = [e for e in inc.timeline if e.kind is TimelineKind.RUNBOOK]
    assert [e.data["event"] for e in rb_entries] == ["started", "confirmed", "skipped", "confirmed", "skipped",
                                                     "action_started", "action_succeeded", "signed_off"]
    assert {e.actor for e in rb_entries} == {"alice", "bob"}
    assert "node already out of the pool" in rb_entries[2].text
    audit = AuditLog(eng.db)
    recs = audit.records(target_kind="runbook_run", target_id=run.id)
    assert [r.action for r in recs] == [f"runbook.{e.data['event']}" for e in rb_entries]
    assert audit.verify().ok


def test_sign_off_distinct_from_executors_and_unknown_names(setup, small_inventory):
    eng, _ = setup
    make_incident(eng.db, iid="inc-pdu", component="PDU-A1", managed_object="dc1/H1/PDU-A1",
                  cause=ProbableCause.POWER_SUPPLY_FAILURE, severity=PerceivedSeverity.CRITICAL, rule="pdu_breaker_trip",
                  labels={"kind": "pdu"}, opened_ns=T0)
    assert eng.suggest("inc-pdu")[0].id == "pdu-breaker-trip"
    run = eng.start("inc-pdu", "pdu-breaker-trip", user="alice", role="operator")
    for sid in ("other-feed-load", "inspect", "drain-single-fed", "close-breaker", "breaker-closed", "racks-powered"):
        eng.skip(run.id, sid, user="alice", role="operator", reason="test")
    with pytest.raises(PermissionDenied, match="ran none of its steps"):
        eng.sign_off(run.id, user="alice", role="operator")
    assert eng.sign_off(run.id, user="carol", role="operator").state == "completed"
    with pytest.raises(RunbookError, match="unknown runbook"):
        eng.start("inc-pdu", "no-such", user="alice", role="operator")
    with pytest.raises(KeyError, match="no incident"):
        eng.start("nope", "pdu-breaker-trip", user="alice", role="operator")
    with pytest.raises(RunbookError, match="no step"):
        eng.confirm(eng.start("inc-pdu", "pdu-breaker-trip", user="alice", role="operator").id, "zzz",
                    user="alice", role="operator", note="x")


def test_expected_alarms_are_silenced_while_the_run_is_active(setup):
    eng, _ = setup
    repo = Repository(eng.db, clock=lambda: T0 / NS + 10)
    run = eng.start("inc-xid", "gpu-xid79", user="alice", role="operator")
    assert len(run.silence_ids) == 2
    active = {s.id: s for s in repo.list_silences()}
    assert set(run.silence_ids) <= set(active)
    m = {str(x) for x in active[run.silence_ids[0]].matchers}
    assert m == {'probable_cause="underlyingResourceUnavailable"', 'device=~"R2\\-01\\-S01"'}
    eng.abort(run.id, user="alice", role="operator", reason="wrong runbook")
    assert not set(run.silence_ids) & {s.id for s in repo.list_silences()}
    assert eng.run(run.id).state == "aborted"


def test_one_active_run_per_runbook_and_incident(setup):
    eng, _ = setup
    run = eng.start("inc-xid", "gpu-xid79", user="alice", role="operator")
    assert run.variables == {"component": "R2-01-S01:2", "server": "R2-01-S01", "device": "R2-01-S01",
                             "accel": "R2-01-S01:2", "accel_index": "2", "rack": "R2-01", "row": "R2", "zone": "Z2",
                             "hall": "H1", "site": run.variables["site"], "incident": "inc-xid", "run": run.id}
    with pytest.raises(RunbookError, match="already running"):
        eng.start("inc-xid", "gpu-xid79", user="bob", role="operator")
    eng.abort(run.id, user="alice", role="operator", reason="restart")
    assert eng.start("inc-xid", "gpu-xid79", user="bob", role="operator").state == "active"
    assert [r.state for r in eng.runs("inc-xid")] == ["aborted", "active"]


@pytest.mark.parametrize("runbook, root, want", [
    ("crac-failure", "CRAC-1", [['probable_cause="temperatureUnacceptable"', 'row=~"R1"'],
                                ['probable_cause="performanceDegraded"', 'row=~"R1"']]),
    ("pdu-breaker-trip", "PDU-A1", [['probable_cause="underlyingResourceUnavailable"', 'rack=~"R1\\-01|R1\\-02|R1\\-03"'],
                                    ['probable_cause="equipmentMalfunction"', 'rack=~"R1\\-01|R1\\-02|R1\\-03"']]),
    ("ups-on-battery", "UPS-A", [['probable_cause="batteryDischarging"', 'component=~"UPS\\-A"']]),
])
def test_expected_alarm_matchers(small_inventory, runbook, root, want):
    from dcops.alerts.alarms.matchers import matches_all, parse_matchers
    from dcops.alerts.runbooks.expected import expected_alarm_silences
    got = expected_alarm_silences(load_runbooks()[runbook], small_inventory, root)
    assert [m for m, _ in got] == want
    ms = parse_matchers(got[0][0])
    if runbook == "crac-failure":
        assert matches_all(ms, {"probable_cause": "temperatureUnacceptable", "row": "R1", "rack": "R1-02"})
        assert not matches_all(ms, {"probable_cause": "temperatureUnacceptable", "row": "R2"})
