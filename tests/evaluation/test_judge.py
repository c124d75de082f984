"""The judge: causes from injected faults, redundancy severity from the topology, incident matching."""

from __future__ import annotations

from dcops.evaluation.judge import causes_of, expected_severity, score
from dcops.sim.faults import affected_components


def _f(inv, at, fault, target):
    return {"at_s": at, "fault": fault, "target": target, "affected": list(affected_components(inv, fault, target))}


def test_redundant_units_hit_together_are_one_cause_with_topology_severity(small_inventory):
    inv = small_inventory
    both = causes_of([_f(inv, 60, "pdu_breaker_trip", "PDU-A2"), _f(inv, 60, "pdu_breaker_trip", "PDU-B2")])
    assert [c.targets for c in both] == [("PDU-A2", "PDU-B2")]
    assert expected_severity(both[0], inv) == "critical"          # R2's racks have no live feed
    (one,) = causes_of([_f(inv, 60, "pdu_breaker_trip", "PDU-B2")])
    assert expected_severity(one, inv) == "major"                  # every rack keeps feed A
    (single_fed,) = causes_of([_f(inv, 60, "pdu_breaker_trip", "PDU-A1")])
    assert expected_severity(single_fed, inv) == "critical"        # R1-03 is fed from A1 only
    (crac,) = causes_of([_f(inv, 60, "crac_failure", "CRAC-1")])
    assert expected_severity(crac, inv) == "major"
    (two,) = causes_of([_f(inv, 60, "crac_failure", "CRAC-3"), _f(inv, 62, "crac_failure", "CRAC-4")])
    assert expected_severity(two, inv) == "critical"
    # different zones, or minutes apart: independent causes
    assert len(causes_of([_f(inv, 60, "crac_failure", "CRAC-1"), _f(inv, 60, "crac_failure", "CRAC-3")])) == 2
    assert len(causes_of([_f(inv, 60, "crac_failure", "CRAC-1"), _f(inv, 400, "crac_failure", "CRAC-2")])) == 2
    assert expected_severity(causes_of([_f(inv, 60, "gpu_xid79", "R2-01-S01:1")])[0], inv) is None


def test_a_second_unit_of_a_group_lost_while_the_first_is_out_is_the_same_cause(small_inventory):
    inv = small_inventory

    def until(f, end):
        return {**f, "until_s": end}

    # CRAC-2 stops while CRAC-1 (same N+1 zone) is still out: one cause, the zone short
    (zone,) = causes_of([until(_f(inv, 60, "crac_failure", "CRAC-1"), 900), until(_f(inv, 400, "crac_failure", "CRAC-2"), 900)])
    assert zone.targets == ("CRAC-1", "CRAC-2") and expected_severity(zone, inv) == "critical"
    # ... or after it is back: two independent causes, each one unit of the zone
    apart = causes_of([until(_f(inv, 60, "crac_failure", "CRAC-1"), 300), until(_f(inv, 400, "crac_failure", "CRAC-2"), 900)])
    assert [expected_severity(c, inv) for c in apart] == ["major", "major"]
    # a fault with no end keeps its unit out
    assert len(causes_of([until(_f(inv, 60, "pdu_breaker_trip", "PDU-A2"), None),
                          until(_f(inv, 3000, "pdu_breaker_trip", "PDU-B2"), 3600)])) == 1
    # other zones, other kinds of loss, faults that do not take a unit out: still independent
    assert len(causes_of([until(_f(inv, 60, "crac_failure", "CRAC-1"), 900), until(_f(inv, 90, "crac_failure", "CRAC-3"), 900)])) == 2
    assert len(causes_of([until(_f(inv, 60, "crac_failure", "CRAC-1"), 900), until(_f(inv, 90, "pdu_breaker_trip", "PDU-A1"), 900)])) == 2
    assert len(causes_of([until(_f(inv, 60, "clogged_filter", "CRAC-1"), 900), until(_f(inv, 90, "crac_failure", "CRAC-2"), 900)])) == 2


def test_score_counts_roots_spurious_and_pages(small_inventory):
    inv = small_inventory
    inc = lambda root, sev: {"root_component": root, "severity": sev}  # noqa: E731
    report = {"scenarios": [
        {"name": "a", "raw_alarms": 40, "pages": 3, "duration_s": 600,
         "faults": [_f(inv, 60, "pdu_breaker_trip", "PDU-B2"), _f(inv, 90, "gpu_xid79", "R1-01-S01:0")],
         "incidents": [inc("PDU-B2", "major"), inc("R2-01", "minor"), inc("R1-01-S01:0", "critical"),
                       inc("CRAC-3", "minor")]},
        {"name": "q", "raw_alarms": 1, "pages": 1, "duration_s": 43200, "faults": [], "incidents": [inc("R1-01", "minor")]},
    ]}
    s = score(report, inv)
    assert s["incidents"] == 4 and s["raw_per_incident"] == 10.0
    assert s["right_root_pct"] == 50.0                  # PDU-B2 and the GPU; R2-01 is in reach but not a root
    assert s["independent_faults"] == 2 and s["faults_with_one_incident"] == 1
    assert s["spurious_incidents"] == 1                 # CRAC-3: nothing faulted reaches it
    assert s["redundancy_cases"] == 1 and s["redundancy_severity_right"] == 0  # two incidents for one PDU
    assert s["pages_per_quiet_day"] == 2.0


def test_a_drift_counts_as_flagged_early_only_when_analytics_saw_it_before_any_threshold(small_inventory):
    inv = small_inventory
    drift = lambda a, r: {**_f(inv, 60, "clogged_filter", "CRAC-1"), "first_analytics_s": a, "first_rule_s": r}  # noqa: E731
    report = {"scenarios": [{"name": n, "raw_alarms": 1, "pages": 1, "duration_s": 3600, "faults": [f],
                             "incidents": [{"root_component": "CRAC-1", "severity": "minor"}]}
                            for n, f in (("early", drift(900.0, 2400.0)), ("never-threshold", drift(1200.0, None)),
                                         ("late", drift(2500.0, 2400.0)), ("unseen", drift(None, 2400.0)))]}
    s = score(report, inv)
    assert (s["gradual_faults"], s["gradual_flagged_before_threshold"]) == (4, 2)


def test_an_alarm_fed_by_two_rules_counts_each_rule_from_when_it_started_raising():
    """A drift found by analytics at 600 s, the threshold joining the same alarm at 1,960 s: the
    analytics came first; a unit stopped (event at 60 s) whose supply drift joins at 80 s: the
    rule came first, whatever order the alarm's `rule` field lists them in."""
    from types import SimpleNamespace

    from dcops.alarm_types import AlarmKey, ProbableCause
    from dcops.evaluation.report import _first_alarms

    ns = 10**9
    drift = SimpleNamespace(component="CRAC-1", rule="cooling_filter_clogged,cooling_filter_drift", raised_ns=600 * ns,
                            key=AlarmKey("CRAC-1", ProbableCause.PRESSURE_UNACCEPTABLE))
    label = SimpleNamespace(target="CRAC-1", affected=(), start_ns=60 * ns)
    since = {drift.key: {"cooling_filter_drift": 600 * ns, "cooling_filter_clogged": 1960 * ns}}
    assert _first_alarms([drift], label, 0, {"cooling_filter_drift"}, since) == {
        "first_analytics_s": 600.0, "first_rule_s": 1960.0}
    drift.rule = "cooling_filter_drift"  # the threshold's source cleared again: still counted from when it raised
    assert _first_alarms([drift], label, 0, {"cooling_filter_drift"}, since)["first_rule_s"] == 1960.0
    stop = SimpleNamespace(component="CRAC-1", rule="cooling_supply_drift,cooling_unit_stopped", raised_ns=60 * ns,
                           key=AlarmKey("CRAC-1", ProbableCause.HEATING_VENT_COOLING))
    since = {stop.key: {"cooling_unit_stopped": 60 * ns, "cooling_supply_drift": 80 * ns}}
    assert _first_alarms([stop], label, 0, {"cooling_supply_drift"}, since) == {
        "first_analytics_s": 80.0, "first_rule_s": 60.0}
