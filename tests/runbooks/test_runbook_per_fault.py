"""Every fault type of the simulator has a runbook that applies to its typical incident and no
other runbook does. The typical incident's root alarm is built from the shipped rule that
raises it (its probable cause and specific-problem text), on a component of the kind the
incident is rooted at; a rule's cause changing under a runbook shows up here."""

from __future__ import annotations

import pytest

from dcops.alarm_types import Alarm, PerceivedSeverity, ProbableCause
from dcops.alerts.alarms.signals import safe_format
from dcops.alerts.correlation.grouping import GROUPS_BY_NAME, GROUP_RULE_NAME
from dcops.alerts.rules.engine import default_rules
from dcops.alerts.runbooks.loader import applicable, load_runbooks
from dcops.sim import FAULT_TYPES

RULES = {r.name: r for r in default_rules()}


def root_alarm(component: str, kind: str, rule: str, vendor: str | None = None, **fmt) -> Alarm:
    if rule == GROUP_RULE_NAME:  # the correlator's synthesised root over a silent rack
        g = GROUPS_BY_NAME["rack-network"]
        cause, event_type, text = g.root_cause, g.event_type, g.text.format(n=8, total=8, parent=component, what="")
    else:
        r = RULES[rule]
        cause, event_type = r.probable_cause, r.event_type
        text = safe_format(r.specific_problem, component=component, **fmt)
    labels = {"kind": kind, "rule": rule, **({"vendor": vendor} if vendor else {})}
    return Alarm(id="a", component=component, managed_object=component, event_type=event_type, probable_cause=cause,
                 severity=PerceivedSeverity.MAJOR, specific_problem=text, raised_ns=0, changed_ns=0, rule=rule,
                 labels=labels)


STUCK = "univariate: {metric} stuck at 61: a noisy sensor repeating itself"

# fault type -> [(root alarm of its typical incident, the runbook)]
TYPICAL = {
    "crac_failure": [(root_alarm("CRAC-1", "cooling", "cooling_unit_fault", message="CRAC-1 stopped"), "crac-failure"),
                     (root_alarm("CRAC-1", "cooling", "cooling_unit_stopped"), "crac-failure")],
    "fan_failure": [(root_alarm("R1-01-S02", "server", "server_fan_fault", message="Fan1 failed"), "fan-failure")],
    "clogged_filter": [(root_alarm("CRAC-2", "cooling", "cooling_filter_clogged", value=262.0), "clogged-filter")],
    "psu_failure": [(root_alarm("R1-02-S01", "server", "server_psu_fault", message="PSU A failed"), "psu-failure")],
    "ups_on_battery": [(root_alarm("UPS-B", "ups", "ups_on_battery", message="UPS-B on battery"), "ups-on-battery"),
                       (root_alarm("UPS-B", "ups", "ups_battery_low", value=41.0), "ups-on-battery")],
    "pdu_breaker_trip": [(root_alarm("PDU-B2", "pdu", "pdu_breaker_trip", message="tripped"), "pdu-breaker-trip"),
                         (root_alarm("PDU-B2", "pdu", "pdu_breaker_open"), "pdu-breaker-trip")],
    "gpu_ecc_dbe": [(root_alarm("R1-01-S01:2", "accel", "gpu_xid_fatal", "nvidia", xid=48,
                                message="Double Bit ECC Error"), "gpu-ecc-dbe"),
                    (root_alarm("R1-01-S01:2", "accel", "gpu_ecc_uncorrected", "nvidia"), "gpu-ecc-dbe")],
    "gpu_xid79": [(root_alarm("R1-02-S02:0", "accel", "gpu_xid_fatal", "nvidia", xid=79,
                              message="GPU has fallen off the bus"), "gpu-xid79"),
                  (root_alarm("R1-02-S02:0", "accel", "accel_down", "nvidia"), "gpu-xid79")],
    "hbm_thermal_throttle": [(root_alarm("R2-01-S01:1", "accel", "accel_hbm_hot", "nvidia", value=99.0),
                              "hbm-thermal-throttle")],
    "npu_thermal_throttle": [(root_alarm("R2-02-S01:3", "accel", "accel_thermal_throttle", "rebellions"),
                              "npu-thermal-throttle"),
                             (root_alarm("R2-02-S01:3", "accel", "accel_core_hot", "rebellions", value=89.0, threshold=87.0),
                              "npu-thermal-throttle")],
    "stuck_sensor": [(root_alarm(comp, kind, "accel_anomaly", vendor, detector="univariate",
                                 explanation=STUCK.split(": ", 1)[1].format(metric=metric)), "stuck-sensor")
                     for comp, kind, vendor, metric in (
                         ("R2-02-S01:1", "accel", "rebellions", "accel_temp_degc"),
                         ("R1-01-S02:1", "accel", "nvidia", "accel_temp_degc"),
                         ("R1-01", "rack", None, "rack_inlet_temp_degc"),
                         ("R1-01-ENV", "env", None, "env_temp_degc"),
                         ("CRAC-3", "cooling", None, "cooling_supply_temp_degc"))],
    "ups_output_lost": [(root_alarm("UPS-A", "ups", "ups_output_lost", value=0.0), "ups-output-lost"),
                        (root_alarm("UPS-A", "ups", "ups_output_off_event", message="output off"), "ups-output-lost")],
    "cdu_pump_failure": [(root_alarm("CDU-H3-1", "cooling", "cdu_flow_lost", value=0.0), "cdu-pump-failure")],
    "coolant_leak": [(root_alarm("CDU-H3-2", "cooling", "cdu_coolant_leak"), "coolant-leak"),
                     (root_alarm("CDU-H3-2", "cooling", "cdu_coolant_low", value=55.0), "coolant-leak")],
    "tor_network_loss": [(root_alarm("R1-01", "rack", "rack_telemetry_absent", value=95.0), "tor-network-loss"),
                         (root_alarm("R1-01", "rack", GROUP_RULE_NAME), "tor-network-loss")],
    "collector_down": [(root_alarm("PDU-A1", "pdu", "pdu_telemetry_absent", value=130.0), "collector-down"),
                       (root_alarm("UPS-A", "ups", "ups_telemetry_absent", value=130.0), "collector-down"),
                       (root_alarm("CRAC-1", "cooling", "cooling_telemetry_absent", value=310.0), "collector-down"),
                       (root_alarm("R2-02-S01:0", "accel", "accel_telemetry_absent", "rebellions", value=130.0),
                        "collector-down"),
                       (root_alarm("R1-01-S01", "server", "server_telemetry_absent", value=95.0), "collector-down")],
}


@pytest.fixture(scope="module")
def books():
    return load_runbooks()


def test_every_fault_type_has_its_typical_incident_here():
    assert set(TYPICAL) == set(FAULT_TYPES)


def test_every_shipped_runbook_serves_a_fault_type(books):
    used = {rb for cases in TYPICAL.values() for _, rb in cases}
    assert used <= set(books)
    assert set(books) - used == set()


@pytest.mark.parametrize("fault, alarm, runbook",
                         [(f, a, rb) for f, cases in TYPICAL.items() for a, rb in cases],
                         ids=[f"{f}-{a.rule}-{a.labels['kind']}" for f, cases in TYPICAL.items() for a, _ in cases])
def test_exactly_the_right_runbook_applies(books, fault, alarm, runbook):
    got = [rb.id for rb in applicable(books.values(), alarm)]
    assert got == [runbook], f"{fault}: root {alarm.rule} on a {alarm.labels['kind']} ({alarm.probable_cause.value})"


def test_npu_throttle_runbook_is_not_offered_for_a_stuck_npu_sensor(books):
    stuck = root_alarm("R2-02-S01:1", "accel", "accel_anomaly", "rebellions", detector="univariate",
                       explanation="accel_temp_degc stuck at 61: a noisy sensor repeating itself")
    assert stuck.probable_cause is ProbableCause.PERFORMANCE_DEGRADED
    assert "npu-thermal-throttle" not in [rb.id for rb in applicable(books.values(), stuck)]


def test_every_manual_step_says_what_it_does_and_what_to_expect(books):
    for rb in books.values():
        assert rb.impact.strip(), rb.id
        for section in ("prechecks", "steps"):
            for st in getattr(rb, section):
                if st.type == "manual":
                    assert st.instruction and st.impact and st.expected, (rb.id, st.id)
