"""The shipped rules on the faults that round out the library (small site, simulator straight
into the alert pipeline): UPS output lost and PDU dead bus, CDU pump and leak, a dead
top-of-rack switch and a dead collector. Lost redundant units carry `unit_lost`; missing data
reads as missing data (lossOfSignal, monitoring), never as "down"."""

from __future__ import annotations

from dcops.alarm_types import EventType, PerceivedSeverity, ProbableCause


def settled(sim_run, seed):
    run = sim_run(seed=seed)
    run.steps(30)
    assert run.repo.list_alarms() == [], "a healthy site raises no alarms"
    return run


GROUP = "correlation_group"  # roots the correlator synthesises over sibling alarms


def by_component(run, synthesised=False):
    """Active alarms the rules raised (and, when asked, the correlator's synthesised roots)."""
    out: dict[str, list] = {}
    for a in run.repo.list_alarms():
        if a.active and (synthesised or a.rule != GROUP):
            out.setdefault(a.component, []).append(a)
    return out


def rules_of(alarms):
    return {r for a in alarms for r in a.rule.split(",")}


DOWN_RULES = {"server_down", "accel_down", "accel_lost", "pdu_breaker_open", "pdu_dead_bus", "ups_output_lost"}


def test_ups_output_lost_and_pdu_dead_bus(sim_run):
    run = settled(sim_run, 11)
    run.sim.inject("ups_output_lost", "UPS-A", duration_s=600)
    run.steps(6)
    alarms = by_component(run)
    ups = alarms["UPS-A"]
    assert len(ups) == 1 and {"ups_output_lost", "ups_output_off_event"} <= rules_of(ups)  # one alarm, two witnesses
    assert ups[0].probable_cause is ProbableCause.POWER_PROBLEM and ups[0].labels.get("unit_lost") == "true"
    for pdu in ("PDU-A1", "PDU-A2"):
        (dead,) = alarms[pdu]
        assert "pdu_dead_bus" in rules_of([dead]) and dead.labels.get("unit_lost") == "true"
    assert "PDU-B1" not in alarms and "UPS-B" not in alarms
    assert "server_down" in rules_of(alarms["R1-03-S01"])  # single-fed from A
    assert not [a for comps in alarms.values() for a in comps if a.probable_cause is ProbableCause.COMMERCIAL_POWER_FAILURE]


def test_breaker_trip_is_not_a_dead_bus(sim_run):
    run = settled(sim_run, 12)
    run.sim.inject("pdu_breaker_trip", "PDU-A2", duration_s=600)
    run.steps(6)
    assert "pdu_dead_bus" not in rules_of(by_component(run).get("PDU-A2", []))
    assert "pdu_breaker_open" in rules_of(by_component(run)["PDU-A2"])


def test_cdu_pump_failure_is_a_lost_cooling_unit(sim_run):
    run = settled(sim_run, 13)
    run.sim.inject("cdu_pump_failure", "CRAC-4", duration_s=1200)
    run.steps(6)
    (cdu,) = by_component(run)["CRAC-4"]
    assert {"cdu_flow_lost", "cooling_unit_fault"} & rules_of([cdu])
    assert cdu.probable_cause is ProbableCause.HEATING_VENT_COOLING and cdu.labels.get("unit_lost") == "true"


def test_coolant_leak_is_detected_before_the_loop_runs_dry(sim_run):
    run = settled(sim_run, 14)
    run.sim.inject("coolant_leak", "CRAC-4", duration_s=3600, rate_pct_per_min=8.0)
    run.steps(2)
    (leak,) = by_component(run)["CRAC-4"]
    assert leak.probable_cause is ProbableCause.LEAK_DETECTED and leak.severity is PerceivedSeverity.CRITICAL
    assert "unit_lost" not in leak.labels  # still cooling
    run.steps(70)  # 8 %/min: below 25 % after ~9.5 minutes, the pumps stop
    causes = {a.probable_cause for a in by_component(run)["CRAC-4"]}
    assert causes == {ProbableCause.LEAK_DETECTED, ProbableCause.HEATING_VENT_COOLING}


def test_dead_tor_reads_as_no_data_not_as_down(sim_run):
    run = settled(sim_run, 15)
    label = run.sim.inject("tor_network_loss", "R1-01", duration_s=900)
    run.steps(15)  # 150 s: past every absence rule's wait
    alarms = [a for comps in by_component(run).values() for a in comps]
    assert alarms
    assert {a.component for a in alarms} <= set(label.affected)
    assert "R1-01" in {a.component for a in alarms}
    for a in alarms:
        assert a.probable_cause is ProbableCause.LOSS_OF_SIGNAL and a.event_type is EventType.COMMUNICATIONS, a
        assert a.labels.get("monitoring") == "true" and not rules_of([a]) & DOWN_RULES
    for a in [a for v in by_component(run, synthesised=True).values() for a in v if a.rule == GROUP]:
        assert a.event_type is EventType.COMMUNICATIONS  # any grouping root says "network", not "power"
    run.steps(80)  # switch back: the data returns and every no-data alarm clears
    assert not by_component(run)


def test_dead_collector_makes_its_device_stale_only(sim_run):
    run = settled(sim_run, 16)
    run.sim.inject("collector_down", "PDU-B1", duration_s=600)
    run.sim.inject("collector_down", "R2-02-S01", duration_s=600)
    run.steps(15)
    alarms = by_component(run)
    assert rules_of(alarms.pop("PDU-B1")) == {"pdu_telemetry_absent"}
    npu = {f"R2-02-S01:{i}" for i in range(4)}
    assert set(alarms) == npu
    assert all(rules_of(v) == {"accel_telemetry_absent"} for v in alarms.values())
    assert all(a.severity is PerceivedSeverity.MINOR for v in alarms.values() for a in v)  # a monitoring incident
