"""Topology correlation on the simulated small site: one incident per upstream failure."""

from __future__ import annotations

from dcops.alarm_types import DeliveryStatus, IncidentState, PerceivedSeverity, TimelineKind

RECEIVER = """
receivers:
  - {name: noc, type: webhook, url: "http://127.0.0.1:9/hook"}
route: {receiver: noc}
"""


def _settle(run, n=30):
    run.steps(n)
    assert run.repo.list_alarms() == [], "a healthy site raises no alarms"


def test_crac_failure_is_one_incident_with_the_crac_as_root(sim_run):
    run = sim_run(seed=1)
    _settle(run)
    label = run.sim.inject("crac_failure", "CRAC-1", duration_s=1800)
    run.steps(150)  # 25 minutes: the zone's racks heat up
    incidents = run.repo.list_incidents()
    assert len(incidents) == 1
    inc = run.repo.get_incident(incidents[0].id)
    assert inc.root_component == "CRAC-1"
    alarms = run.repo.incident_alarms(inc.id)
    root, symptoms = alarms[0], alarms[1:]
    assert root.component == "CRAC-1" and root.root_cause
    # N+1 zone: one unit lost is "redundancy lost", not an outage
    assert root.severity is PerceivedSeverity.MAJOR and "redundancy lost in zone Z1" in root.additional_text
    assert symptoms, "the zone's racks must have raised temperature alarms"
    downstream = run.sim.inventory.downstream("CRAC-1")
    for s in symptoms:
        assert s.component in downstream and s.root_alarm_id == root.id
    assert set(root.correlated) == {s.id for s in symptoms}
    assert {s.component for s in symptoms} <= set(label.affected) | downstream
    kinds = [e.kind for e in inc.timeline]
    assert TimelineKind.ROOT_CAUSE in kinds and kinds.count(TimelineKind.ALARM_RAISED) >= len(alarms)
    # nothing outside the zone alarmed
    assert all(a.incident_id == inc.id for a in run.repo.list_alarms())


def test_second_crac_in_the_zone_makes_it_critical(sim_run):
    run = sim_run(seed=2)
    _settle(run)
    run.sim.inject("crac_failure", "CRAC-1", duration_s=1800)
    run.steps(6)
    run.sim.inject("crac_failure", "CRAC-2", duration_s=1800)
    run.steps(6)
    cracs = {a.component: a for a in run.repo.list_alarms() if a.component.startswith("CRAC")}
    assert set(cracs) == {"CRAC-1", "CRAC-2"}
    assert all(a.severity is PerceivedSeverity.CRITICAL for a in cracs.values())
    assert "cooling capacity lost in zone Z1" in cracs["CRAC-2"].additional_text


def test_ups_on_battery_is_one_incident_for_the_racks_it_feeds(sim_run):
    run = sim_run(seed=3, cfg_text=RECEIVER)
    _settle(run)
    # ~7 % load: a battery rated 600 s at half load lasts ~6,400 s (Peukert); outlast it
    run.sim.inject("ups_on_battery", "UPS-A", duration_s=7200)
    for _ in range(30):  # until the battery is empty (its runtime follows the load), at most 2.5 h
        run.steps(30)
        if any(a.component == "R1-03-S01" for a in run.repo.list_alarms()):
            break
    run.steps(12)
    incidents = run.repo.list_incidents()
    assert len(incidents) == 1
    inc = incidents[0]
    assert inc.root_component == "UPS-A" and inc.severity is PerceivedSeverity.CRITICAL
    alarms = run.repo.incident_alarms(inc.id)
    root = alarms[0]
    assert root.component == "UPS-A" and root.root_cause
    fed = {r for p in ("PDU-A1", "PDU-A2") for r in run.sim.inventory.racks_of_pdu[p]}
    symptoms = alarms[1:]
    # the battery ran out: the single-fed rack R1-03 went dark; its server and GPUs are symptoms
    assert {"R1-03-S01"} <= {s.component for s in symptoms}
    for s in symptoms:
        comp = run.sim.inventory.components[s.component]
        assert comp.name in ("UPS-A", "PDU-A1", "PDU-A2") or comp.rack in fed  # its PDUs: dead bus
    # dual-fed racks kept feed B: nothing of theirs is down
    assert not [a for a in run.repo.list_alarms() if a.component.startswith(("R1-01", "R2-"))]
    # one page per step of severity, not one per alarm: on battery (major), then the battery
    # empty and R1-03 dark (critical)
    notes = sorted(run.repo.notifications(), key=lambda n: n.created_ns)
    assert [n.action.value for n in notes] == ["trigger", "trigger"]
    assert all(n.status is DeliveryStatus.PENDING for n in notes)
    assert [n.payload["incident"]["severity"] for n in notes] == ["major", "critical"]


def test_pdu_feed_loss_with_dual_feeds_is_redundancy_lost(sim_run):
    run = sim_run(seed=4)
    _settle(run)
    run.sim.inject("pdu_breaker_trip", "PDU-B2", duration_s=600)
    run.steps(10)
    (pdu,) = [a for a in run.repo.list_alarms() if a.component == "PDU-B2"]
    assert pdu.severity is PerceivedSeverity.MAJOR and "redundancy lost" in pdu.additional_text
    run.sim.inject("pdu_breaker_trip", "PDU-A1", duration_s=600)   # R1-03 is single-fed from A1
    run.steps(10)
    (a1,) = [a for a in run.repo.list_alarms() if a.component == "PDU-A1"]
    assert a1.severity is PerceivedSeverity.CRITICAL and "R1-03" in a1.additional_text
    inc = run.repo.get_incident(a1.incident_id)
    assert inc.root_component == "PDU-A1"
    assert {a.component for a in run.repo.incident_alarms(inc.id)} >= {"PDU-A1", "R1-03-S01"}


def test_incident_resolves_when_the_fault_clears(sim_run):
    run = sim_run(seed=5, cfg_text=RECEIVER)
    _settle(run)
    run.sim.inject("gpu_xid79", "R2-01-S01:1", duration_s=200)
    run.steps(40)
    (inc,) = run.repo.list_incidents()
    assert inc.state is IncidentState.RESOLVED and inc.root_component == "R2-01-S01:1"
    assert sorted(n.action.value for n in run.repo.notifications()) == ["resolve", "trigger"]
    # the cleared alarm stays listed until acknowledged (cleared-unacknowledged), then leaves
    (alarm,) = run.repo.list_alarms()
    assert alarm.list_state.value == "cleared-unacknowledged"
    run.repo.acknowledge_alarm(alarm.id, "alice")
    assert run.repo.list_alarms() == []


INHIBIT = RECEIVER + """
inhibit_rules:
  - source_matchers: ['probable_cause="underlyingResourceUnavailable"']
    target_matchers: ['kind="accel"']
    equal: [device]
"""


def test_inhibition_keeps_gpu_alarms_of_a_down_server_visible_but_quiet(sim_run):
    run = sim_run(seed=6, cfg_text=INHIBIT)
    _settle(run)
    run.sim.inject("pdu_breaker_trip", "PDU-A1", duration_s=1200)
    run.steps(8)
    server = [a for a in run.repo.list_alarms() if a.component == "R1-03-S01" and a.probable_cause.value == "underlyingResourceUnavailable"]
    assert server
    gpus = [a for a in run.repo.list_alarms() if a.labels.get("kind") == "accel"]
    assert gpus, "the dark rack's accelerators alarm"
    assert all(a.suppressed_by == (f"inhibited:{server[0].id}",) for a in gpus)
    assert len(run.repo.list_incidents()) == 1 and len(run.repo.notifications()) == 1


def test_an_incident_that_gets_worse_pages_again_with_its_new_severity(sim_run):
    """One CRAC of an N+1 zone lost is major; its zone-mate lost three minutes later joins the
    incident (the second unit of the same redundant group) and leaves the zone short: critical.
    The on-call was paged for "major"; the raise is paged too, once, and nothing else repeats."""
    run = sim_run(seed=3, cfg_text=RECEIVER)
    _settle(run)
    run.sim.inject("crac_failure", "CRAC-1", duration_s=1800)
    run.steps(18)
    (inc,) = run.repo.list_incidents()
    assert inc.severity is PerceivedSeverity.MAJOR
    assert [n.action.value for n in run.repo.notifications()] == ["trigger"]
    run.sim.inject("crac_failure", "CRAC-2", duration_s=1800)
    run.steps(30)
    (inc,) = run.repo.list_incidents()
    assert inc.severity is PerceivedSeverity.CRITICAL
    notes = sorted(run.repo.notifications(), key=lambda n: n.created_ns)
    assert [n.action.value for n in notes] == ["trigger", "trigger"]
    assert notes[1].idempotency_key.endswith(":severity-critical") and notes[1].payload["incident"]["severity"] == "critical"
    inc = run.repo.get_incident(inc.id)
    raised = [e for e in inc.timeline if e.text.startswith("severity raised major -> critical")]
    assert len(raised) == 1
