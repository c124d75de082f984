"""The console's repository API: incident lifecycle, notes, operator incidents, audit."""

from __future__ import annotations

import pytest

from dcops.alarm_types import IncidentState, TimelineKind

RECEIVER = """
receivers:
  - {name: pd, type: pagerduty, routing_key: "k", url: "http://127.0.0.1:9/v2/enqueue"}
route: {receiver: pd}
"""


@pytest.fixture
def run_with_incident(sim_run):
    run = sim_run(seed=11, cfg_text=RECEIVER)
    run.steps(20)
    run.sim.inject("pdu_breaker_trip", "PDU-A1", duration_s=3000)
    run.steps(6)
    (inc,) = run.repo.list_incidents()
    return run, inc


def test_incident_lifecycle_and_pagerduty_actions(run_with_incident):
    run, inc = run_with_incident
    repo = run.repo
    assert inc.state is IncidentState.OPEN and len(inc.alarm_ids) >= 3
    with pytest.raises(ValueError, match="user name is required"):
        repo.set_incident_state(inc.id, "acknowledged", "  ")
    got = repo.acknowledge_incident(inc.id, "alice")
    assert got.state is IncidentState.ACKNOWLEDGED and got.acknowledged_by == "alice"
    repo.add_note(inc.id, "alice", "breaker inspected, load moved to B")
    repo.set_incident_state(inc.id, "mitigating", "alice", note="closing the breaker")
    run.steps(1)                                   # the alerter applies the operator actions
    actions = [n.action.value for n in sorted(repo.notifications(incident_id=inc.id), key=lambda n: n.created_ns)]
    assert actions == ["trigger", "acknowledge"]
    repo.set_incident_state(inc.id, "resolved", "alice")
    repo.set_incident_state(inc.id, "closed", "bob")
    with pytest.raises(ValueError, match="closed; it can go to: none"):
        repo.set_incident_state(inc.id, "open", "bob")
    run.steps(1)
    assert sorted(n.action.value for n in repo.notifications(incident_id=inc.id)) == ["acknowledge", "resolve", "trigger"]
    full = repo.get_incident(inc.id)
    texts = [(e.kind, e.actor, e.text) for e in full.timeline]
    assert (TimelineKind.NOTE, "alice", "breaker inspected, load moved to B") in texts
    assert any(k is TimelineKind.STATE and a == "bob" and "closed" in t for k, a, t in texts)
    assert any(k is TimelineKind.NOTIFICATION for k, _, _ in texts)
    assert [a["action"] for a in repo.operator_actions()][:2] == ["incident_state", "incident_state"]
    rt = repo.response_times()
    assert rt["incidents"] == 1 and rt["mtta_s"] is not None and rt["mttr_s"] is not None


def test_alarm_filters_and_acknowledgement(run_with_incident):
    run, inc = run_with_incident
    repo = run.repo
    crit = repo.list_alarms(min_severity="critical")
    assert crit and all(a.severity.value == "critical" for a in crit)
    in_rack = repo.list_alarms(component="test/H1/R1/R1-03")
    assert in_rack and all(a.managed_object.startswith("test/H1/R1/R1-03/") for a in in_rack)
    alarm = repo.list_alarms(component="PDU-A1")[0]
    acked = repo.acknowledge_alarm(alarm.id, "alice")
    assert acked.list_state.value == "active-acknowledged"
    run.steps(1)
    assert repo.get_alarm(alarm.id).acknowledged_by == "alice"     # the alerter did not overwrite it
    assert [a.id for a in repo.list_alarms(states=["active-acknowledged"])] == [alarm.id]
    with pytest.raises(KeyError, match="no alarm 'nope'"):
        repo.acknowledge_alarm("nope", "alice")


def test_operator_opens_an_incident_and_clears_an_alarm(run_with_incident):
    run, inc = run_with_incident
    repo = run.repo
    other = repo.open_incident("investigating odd PDU readings", "carol", severity="minor")
    assert other.opened_by == "carol" and other.state is IncidentState.OPEN
    with pytest.raises(ValueError, match="needs a title"):
        repo.open_incident(" ", "carol")
    pdu = repo.list_alarms(component="PDU-A1")[0]
    repo.clear_alarm(pdu.id, "carol")
    run.steps(1)
    assert repo.get_alarm(pdu.id).cleared_by == "carol"
    repo.add_timeline(inc.id, "runbook", "step 1: checked breaker", "carol", step=1)
    assert repo.get_incident(inc.id).timeline[-1].data == {"step": 1}


def test_operator_actions_land_in_the_hash_chained_audit_log(run_with_incident):
    from dcops.alerts.storage.audit import AuditLog
    from dcops.alerts.storage.repository import Repository

    run, inc = run_with_incident
    audit = AuditLog(run.repo.engine)
    audit.ensure_schema()
    repo = Repository(run.repo.engine, run.repo.inventory, audit=audit)
    alarm = repo.list_alarms(component="PDU-A1")[0]
    repo.acknowledge_alarm(alarm.id, "alice")
    repo.add_note(inc.id, "bob", "feed B carries the racks")
    records = audit.records()
    assert [(r.actor, r.action, r.target_id) for r in records][:1] == [("alice", "ack_alarm", alarm.id)]
    assert any(r.actor == "bob" and r.target_id == inc.id for r in records)
    assert audit.verify().ok
