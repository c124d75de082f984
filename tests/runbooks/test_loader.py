"""Runbook YAML: the shipped ones load; a runbook with an error is refused with file, line and
field; which runbook applies to which alarm."""

from __future__ import annotations

import textwrap

import pytest

from dcops.alerts.runbooks.loader import DEFAULT_RUNBOOKS, applicable, load_runbook, load_runbooks, runbook_from_text
from dcops.alerts.rules.engine import default_rules
from dcops.alarm_types import Alarm, EventType, PerceivedSeverity, ProbableCause
from dcops.cli import main
from dcops.yamlconf import ConfigError

GOOD = textwrap.dedent("""\
    id: test-rb
    title: Test
    applies_to:
      probable_causes: [fanFailure]
    impact: none
    steps:
      - id: look
        type: manual
        title: Look
        instruction: Look at it.
      - id: hot
        type: check
        title: Inlet
        check: {metric: rack_inlet_temp_degc, scope: {kind: rack}, comparison: "<", threshold: 27, duration_s: 300}
      - id: drain
        type: action
        title: Drain
        executor: drain_node
    """)


def _problems(text: str) -> list[tuple[int | None, str, str]]:
    with pytest.raises(ConfigError) as ei:
        runbook_from_text(text, "rb.yaml")
    return [(p.line, p.field, p.message) for p in ei.value.problems]


def test_shipped_runbooks_cover_the_default_rule_pack():
    books = load_runbooks()
    assert set(books) == {"crac-failure", "ups-on-battery", "pdu-breaker-trip", "gpu-xid79", "gpu-ecc-dbe",
                          "npu-thermal-throttle", "fan-failure", "psu-failure", "clogged-filter", "hbm-thermal-throttle",
                          "stuck-sensor", "ups-output-lost", "cdu-pump-failure", "coolant-leak", "tor-network-loss",
                          "collector-down"}
    rules = {r.name: r for r in default_rules()}
    for rb in books.values():
        for name in rb.applies_to.rules:
            assert name in rules, f"{rb.id} names unknown rule {name}"
        causes = {r.probable_cause for r in rules.values()}
        assert set(rb.applies_to.probable_causes) <= causes | {ProbableCause.BATTERY_DISCHARGING}


def test_good_runbook_and_defaults():
    rb = runbook_from_text(GOOD)
    assert [s.id for s in rb.flow] == ["look", "hot", "drain"]
    assert rb.step("drain").is_destructive  # drain_node is destructive by default
    assert rb.sign_off.role == "operator"


@pytest.mark.parametrize("old, new, line, field, message", [
    ("metric: rack_inlet_temp_degc", "metric: rack_inlet_temp_c", 14, "steps.1.check.metric", "not in the catalogue"),
    ("type: manual", "type: manul", 7, "steps.0", "manul"),
    ("executor: drain_node", "executor: rm_rf", 18, "steps.2.executor", "unknown executor 'rm_rf'"),
    ("    executor: drain_node", "    executor: drain_node\n    options: {nod: x}", 15, "steps.2",
     "options.nod: unknown option"),
    ("    executor: drain_node", "    executor: drain_node\n    options: {node: '{hostname}'}", 15, "steps.2",
     "unknown placeholder"),
    ("threshold: 27,", "threshold: warm,", 14, "steps.1.check.threshold", "number"),
    ("scope: {kind: rack}", "scope: {kind: pdu}", 14, "steps.1.check", "cannot select 'rack' samples"),
    ("impact: none", "impakt: none", 5, "impakt", "unknown field"),
    ("  probable_causes: [fanFailure]", "  probable_causes: [fanBroken]", 4, "applies_to.probable_causes.0", "Input should be"),
    ("id: hot", "id: look", 11, "steps.1.id", "used twice"),
])
def test_errors_name_line_and_field(old, new, line, field, message):
    text = GOOD.replace(old, new)
    assert text != GOOD
    problems = _problems(text)
    assert any(ln == line and f.startswith(field) and message in msg for ln, f, msg in problems), problems


def test_yaml_syntax_error_has_a_line():
    problems = _problems(GOOD.replace("title: Look", "title: [Look"))
    assert problems[0][0] is not None and "YAML syntax" in problems[0][2]


def test_a_bad_file_in_a_directory_is_reported_with_the_others(tmp_path):
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text(GOOD.replace("title: Test", "title: ''"))
    (tmp_path / "c.yaml").write_text(GOOD)  # same id as a.yaml
    with pytest.raises(ConfigError) as ei:
        load_runbooks(tmp_path)
    text = str(ei.value)
    assert f"{tmp_path / 'b.yaml'}:2: title:" in text
    assert "also used by" in text and "c.yaml" in text


def test_cli_validate(tmp_path, capsys):
    assert main(["runbook", "validate"]) == 0
    assert "OK: 16 runbook(s)" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("threshold: 27,", "threshold: warm,"))
    assert main(["runbook", "validate", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:14: steps.1.check.threshold:" in err
    assert main(["runbook", "validate", str(DEFAULT_RUNBOOKS / "crac-failure.yaml")]) == 0


def _alarm(cause, component, kind, rule="", text="", **labels):
    return Alarm(id="a", component=component, managed_object=component, event_type=EventType.EQUIPMENT,
                 probable_cause=cause, severity=PerceivedSeverity.CRITICAL, specific_problem=text, raised_ns=0,
                 changed_ns=0, rule=rule, labels={"kind": kind, **labels})


@pytest.mark.parametrize("alarm, first", [
    (_alarm(ProbableCause.HEATING_VENT_COOLING, "CRAC-1", "cooling", "cooling_unit_stopped"), "crac-failure"),
    (_alarm(ProbableCause.COMMERCIAL_POWER_FAILURE, "UPS-A", "ups", "ups_on_battery"), "ups-on-battery"),
    (_alarm(ProbableCause.POWER_SUPPLY_FAILURE, "PDU-A1", "pdu", "pdu_breaker_trip"), "pdu-breaker-trip"),
    (_alarm(ProbableCause.EQUIPMENT_MALFUNCTION, "R2-01-S01:0", "accel", "gpu_xid_fatal", "XID 79 on x: fallen off",
            vendor="nvidia"), "gpu-xid79"),
    (_alarm(ProbableCause.EQUIPMENT_MALFUNCTION, "R2-01-S01:0", "accel", "gpu_ecc_uncorrected,gpu_xid_fatal",
            "XID 48 on x: DBE", vendor="nvidia"), "gpu-ecc-dbe"),
    (_alarm(ProbableCause.PERFORMANCE_DEGRADED, "R2-02-S01:1", "accel", "accel_thermal_throttle", vendor="rebellions"),
     "npu-thermal-throttle"),
])
def test_applicable_runbook(alarm, first):
    books = load_runbooks()
    got = [rb.id for rb in applicable(books.values(), alarm)]
    assert got and got[0] == first


def test_no_runbook_for_unrelated_alarm():
    a = _alarm(ProbableCause.PERFORMANCE_DEGRADED, "R2-01-S01:0", "accel", "accel_thermal_throttle", vendor="nvidia")
    assert applicable(load_runbooks().values(), a) == []


def test_load_runbook_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_runbook(tmp_path / "none.yaml")
