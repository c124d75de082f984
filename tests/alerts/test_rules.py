"""Rule files (validation with line numbers) and every rule type's evaluator."""

from __future__ import annotations

import numpy as np
import pytest

from dcops.alerts.rules import cli as rules_cli
from dcops.alerts.rules.engine import DEFAULT_RULES, RULE_TYPES, RuleEngine, default_rules, load_rules, rules_from_text
from dcops.batch import Batch, Event
from dcops.catalogue import EVENT_KINDS, METRICS
from dcops.findings import Finding
from dcops.yamlconf import ConfigError

NS = 1_000_000_000
HEAD = "rules:\n"


def _rule(body: str) -> str:
    return HEAD + body


def test_default_pack_loads_and_uses_catalogue_names():
    rules = default_rules()
    assert len(rules) >= 20
    assert {r.type for r in rules} == set(RULE_TYPES)
    for r in rules:
        if hasattr(r, "metric"):
            assert r.metric in METRICS
        for k in getattr(r, "kinds", ()):
            assert k in EVENT_KINDS
    covered = {getattr(r, "metric", "").split("_")[0] for r in rules} | {k for r in rules for k in getattr(r, "kinds", ())}
    assert {"accel", "pdu", "ups", "cooling", "server", "rack", "xid"} <= covered


@pytest.mark.parametrize("body, line, field, text", [
    ("  - {name: a, type: threshold, metric: accel_temp_c, op: '>', value: 1, event_type: environmentalAlarm, probable_cause: temperatureUnacceptable}\n",
     2, "rules.0.metric", "not in the catalogue"),
    ("  - name: a\n    type: threshold\n    metric: accel_temp_degc\n    op: '>'\n    value: 90\n    clear: 95\n"
     "    event_type: environmentalAlarm\n    probable_cause: temperatureUnacceptable\n", 7, "rules.0.clear", "hysteresis"),
    ("  - name: a\n    type: event\n    kinds: [xid]\n    event_type: equipmentAlarm\n    probable_cause: gpuExploded\n",
     6, "rules.0.probable_cause", "Input should be"),
    ("  - name: a\n    type: event\n    kinds: [xid]\n    event_type: equipmentAlarm\n    probable_cause: equipmentMalfunction\n"
     "    severity: cleared\n", 7, "rules.0.severity", "cannot raise"),
    ("  - name: a\n    type: nonsense\n", 2, "rules.0", "does not match"),
    ("  - name: a\n    type: event\n    kinds: [xid]\n    event_type: equipmentAlarm\n    probable_cause: equipmentMalfunction\n"
     "    colour: red\n", 7, "rules.0.colour", "unknown field"),
])
def test_rule_errors_name_line_and_field(body, line, field, text):
    with pytest.raises(ConfigError) as ei:
        rules_from_text(_rule(body), "r.yaml")
    probs = ei.value.problems
    assert any(p.line == line and p.field == field and text in p.message for p in probs), [str(p) for p in probs]


def test_duplicate_rule_names_and_yaml_syntax_are_refused():
    body = ("  - {name: a, type: event, kinds: [xid], event_type: equipmentAlarm, probable_cause: equipmentMalfunction}\n"
            "  - {name: a, type: event, kinds: [xid], event_type: equipmentAlarm, probable_cause: equipmentMalfunction}\n")
    with pytest.raises(ConfigError, match=r"r.yaml:3: rules.1.name: rule name 'a' is used twice"):
        rules_from_text(_rule(body), "r.yaml")
    with pytest.raises(ConfigError, match=r"r.yaml:3: .*YAML syntax"):
        rules_from_text("rules:\n  - {name: a, type: [\n", "r.yaml")


def test_rules_cli_check(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(_rule("  - name: hot\n    type: threshold\n    metric: accel_temp_degc\n    op: '>>'\n    value: 90\n"
                         "    event_type: environmentalAlarm\n    probable_cause: temperatureUnacceptable\n"))

    class A:
        rules_command = "check"
        files = [str(bad)]
    assert rules_cli.run(A) == 1
    err = capsys.readouterr().err
    assert f"{bad}:5: rules.0.op:" in err
    A.files = [str(DEFAULT_RULES)]
    assert rules_cli.run(A) == 0
    assert "OK:" in capsys.readouterr().out


def _accel_batch(t_s: float, temps: dict[str, float]) -> Batch:
    names = list(temps)
    dev = [n.split(":")[0] for n in names]
    idx = [n.split(":")[1] for n in names]
    return Batch("accel", np.full(len(names), int(t_s * NS)), {"device": dev, "accel": idx, "vendor": ["nvidia"] * len(names)},
                 {"accel_temp_degc": [temps[n] for n in names]})


def _engine(text: str):
    active: dict[str, set[str]] = {}
    eng = RuleEngine(rules_from_text(_rule(text)), lambda r: active.setdefault(r, set()))
    return eng, active


def _apply(active, signals):
    for s in signals:
        (active.setdefault(s.rule, set()).add if s.active else active.setdefault(s.rule, set()).discard)(s.component)
    return signals


THRESH = ("  - {name: hot, type: threshold, metric: accel_temp_degc, op: '>', value: 85, clear: 80, for_s: 20,"
          " event_type: environmentalAlarm, probable_cause: temperatureUnacceptable, specific_problem: '{component} at {value:.0f}'}\n")


SUPPLY = ("  - {name: supply_hot, type: threshold, metric: cooling_supply_temp_degc, relative_to: cooling_setpoint_degc,"
          " op: '>', value: 6, clear: 3, event_type: environmentalAlarm, probable_cause: heatingVentCoolingSystemProblem,"
          " specific_problem: '{component} supply {value:.1f}, setpoint {reference:.1f}, above {threshold:.1f}'}\n")


def _cooling_batch(t_s: float, supply: dict[str, float], setpoint: dict[str, float] | None = None) -> Batch:
    names = list(supply)
    fields = {"cooling_supply_temp_degc": [supply[n] for n in names]}
    if setpoint is not None:
        fields["cooling_setpoint_degc"] = [setpoint.get(n, np.nan) for n in names]
    return Batch("cooling", np.full(len(names), int(t_s * NS)), {"device": names}, fields)


def test_a_threshold_relative_to_each_units_setpoint():
    # a warm-water CDU at 32 degC and an air CRAC at 18 degC, one rule for both
    active: dict[str, set[str]] = {}
    configured = {("CRAC-9", "cooling_setpoint_degc"): 20.0}
    eng = RuleEngine(rules_from_text(_rule(SUPPLY)), lambda r: active.setdefault(r, set()),
                     lambda comp, metric: configured.get((comp, metric)))
    sp = {"CDU-1": 32.0, "CRAC-1": 18.0}
    out = _apply(active, eng.on_batch(_cooling_batch(0, {"CDU-1": 33.0, "CRAC-1": 25.0}, sp)))
    assert [(s.component, s.specific_problem) for s in out] == [("CRAC-1", "CRAC-1 supply 25.0, setpoint 18.0, above 24.0")]
    out = _apply(active, eng.on_batch(_cooling_batch(10, {"CDU-1": 38.5, "CRAC-1": 20.5}, sp)))
    assert [(s.component, s.active) for s in out] == [("CDU-1", True), ("CRAC-1", False)]
    # a row without the setpoint: the unit's last reported one; never reported: the site file's
    out = _apply(active, eng.on_batch(_cooling_batch(20, {"CDU-1": 34.0, "CRAC-1": 24.5, "CRAC-9": 25.0})))
    assert sorted((s.component, s.active) for s in out) == [("CDU-1", False), ("CRAC-1", True)]
    out = _apply(active, eng.on_batch(_cooling_batch(30, {"CRAC-9": 26.5})))
    assert [(s.component, s.specific_problem) for s in out] == [("CRAC-9", "CRAC-9 supply 26.5, setpoint 20.0, above 26.0")]
    # no reference at all: not evaluated (never against a made-up one)
    assert eng.on_batch(_cooling_batch(40, {"CRAC-X": 90.0})) == []


def test_a_reference_from_another_measurement_is_refused():
    body = SUPPLY.replace("relative_to: cooling_setpoint_degc", "relative_to: rack_inlet_temp_degc")
    with pytest.raises(ConfigError) as ei:
        rules_from_text(_rule(body), "r.yaml")
    assert any(p.field == "rules.0.relative_to" and "same rows" in p.message for p in ei.value.problems), \
        [str(p) for p in ei.value.problems]


def test_threshold_needs_duration_and_clears_with_hysteresis():
    eng, active = _engine(THRESH)
    seq = [(0, 90), (10, 90), (20, 91), (30, 84), (40, 82), (50, 79)]
    out = []
    for t, v in seq:
        out.append([(s.active, s.specific_problem) for s in _apply(active, eng.on_batch(_accel_batch(t, {"S1:0": v, "S1:1": 50})))])
    assert out == [[], [], [(True, "S1:0 at 91")], [], [], [(False, "S1:0 at 79")]]


def test_threshold_duration_restarts_when_the_condition_breaks():
    eng, active = _engine(THRESH)
    for t, v in [(0, 90), (10, 80), (20, 90), (30, 90)]:
        assert not _apply(active, eng.on_batch(_accel_batch(t, {"S1:0": v})))
    assert _apply(active, eng.on_batch(_accel_batch(40, {"S1:0": 90})))[0].active


def test_where_filters_by_tags():
    eng, _ = _engine(THRESH.replace("for_s: 20,", "for_s: 0, where: {vendor: rebellions},"))
    assert eng.on_batch(_accel_batch(0, {"S1:0": 99})) == []


def test_rate_rule():
    eng, active = _engine("  - {name: ecc, type: rate, metric: accel_ecc_uncorrected_total, per_minute: 0, clear_per_minute: 0.001,"
                          " event_type: equipmentAlarm, probable_cause: equipmentMalfunction}\n")

    def b(t, v):
        return Batch("accel", np.array([t * NS]), {"device": ["S1"], "accel": ["0"]}, {"accel_ecc_uncorrected_total": [v]})
    assert _apply(active, eng.on_batch(b(0, 5))) == []
    s = _apply(active, eng.on_batch(b(10, 7)))
    assert s[0].active and s[0].component == "S1:0"
    assert _apply(active, eng.on_batch(b(20, 7)))[0].active is False


def test_absence_rule_raises_on_tick_and_clears_when_data_returns():
    eng, active = _engine("  - {name: gone, type: absence, metric: cooling_running, for_s: 60,"
                          " event_type: communicationsAlarm, probable_cause: lossOfSignal}\n")

    def b(t, v):
        return Batch("cooling", np.array([t * NS]), {"device": ["CRAC-1"], "index": [""]}, {"cooling_running": [v]})
    eng.on_batch(b(0, 1))
    assert eng.on_tick(50 * NS) == []
    eng.on_batch(b(55, np.nan))            # a NaN is not a reading
    (s,) = _apply(active, eng.on_tick(61 * NS))
    assert s.active and s.component == "CRAC-1"
    assert _apply(active, eng.on_batch(b(70, 1)))[0].active is False


def test_event_rule_matches_attributes_and_clears():
    eng, active = _engine("  - {name: xid, type: event, kinds: [xid], match: {xid: [79, 48]}, clear_kinds: [accel_recovered],"
                          " clear_after_s: 100, event_type: equipmentAlarm, probable_cause: equipmentMalfunction,"
                          " specific_problem: 'XID {xid} on {component}'}\n")
    tgt = {"site": "s", "device": "S1", "accel": "2"}
    assert eng.on_events([Event(0, "xid", "nvml", tgt, attributes={"xid": 13})]) == []
    (s,) = _apply(active, eng.on_events([Event(1, "xid", "nvml", tgt, attributes={"xid": 79})]))
    assert s.active and s.component == "S1:2" and s.specific_problem == "XID 79 on S1:2"
    (c,) = _apply(active, eng.on_events([Event(2, "accel_recovered", "nvml", tgt)]))
    assert not c.active
    _apply(active, eng.on_events([Event(3 * NS, "xid", "nvml", tgt, attributes={"xid": 48})]))
    assert eng.on_tick(50 * NS) == []
    assert _apply(active, eng.on_tick(200 * NS))[0].active is False


def test_anomaly_rule_scores():
    eng, active = _engine("  - {name: anom, type: anomaly, min_score: 0.8, clear_score: 0.4, detectors: [peer_group],"
                          " event_type: qualityOfServiceAlarm, probable_cause: performanceDegraded}\n")

    def f(score, det="peer_group", t=0):
        return Finding(t, "S1:0", {"device": "S1", "accel": "0"}, det, score, "hotter than peers")
    assert eng.on_findings([f(0.95, "univariate")]) == []
    assert _apply(active, eng.on_findings([f(0.9)]))[0].active
    assert eng.on_findings([f(0.6)]) == []                   # between clear and raise: stays
    assert _apply(active, eng.on_findings([f(0.3)]))[0].active is False


def test_anomaly_rule_features_pick_the_findings_led_by_them():
    from dcops.findings import Contribution

    eng, active = _engine("  - {name: filt, type: anomaly, min_score: 0.8, detectors: [slow_drift], features: [cooling_filter_dp_pa],"
                          " event_type: equipmentAlarm, probable_cause: pressureUnacceptable}\n")

    def f(feature, score=0.9):
        return Finding(0, "CRAC-1", {"device": "CRAC-1"}, "slow_drift", score, "drifting",
                       (Contribution(feature, 180.0, 140.0, 20.0),))
    assert eng.on_findings([f("cooling_supply_temp_degc")]) == []
    assert eng.on_findings([Finding(0, "CRAC-1", {"device": "CRAC-1"}, "slow_drift", 0.9, "no contributions")]) == []
    (s,) = _apply(active, eng.on_findings([f("cooling_filter_dp_pa")]))
    assert s.active and s.component == "CRAC-1"
    with pytest.raises(ConfigError) as ei:
        rules_from_text(_rule("  - {name: x, type: anomaly, min_score: 0.8, features: [cooling_filter_dp],"
                              " event_type: equipmentAlarm, probable_cause: pressureUnacceptable}\n"), "r.yaml")
    assert any(p.field == "rules.0.features" and "not in the catalogue" in p.message for p in ei.value.problems)


def test_every_registered_detector_is_paged_by_a_default_rule():
    """A detector whose findings no rule turns into an alarm computes for nothing."""
    from dcops.analytics.fleet import DETECTORS

    rules = [r for r in default_rules() if r.type == "anomaly"]
    reported = {"inlet_residual": "thermal_residual"}  # rack inlets are reported as thermal residuals
    for name in DETECTORS:
        assert any(not r.detectors or reported.get(name, name) in r.detectors for r in rules), name


def test_load_rules_refuses_names_defined_in_two_files(tmp_path):
    one = tmp_path / "one.yaml"
    one.write_text(_rule("  - {name: a, type: event, kinds: [xid], event_type: equipmentAlarm, probable_cause: equipmentMalfunction}\n"))
    two = tmp_path / "two.yaml"
    two.write_text(one.read_text())
    with pytest.raises(ConfigError, match="also defined in"):
        load_rules([one, two])
    with pytest.raises(ConfigError, match="cannot read"):
        load_rules(tmp_path / "missing.yaml")


def test_default_pack_maps_trap_events():
    """Trap-derived events (dcops.collectors.snmp_traps) raise the same alarms as polled state."""
    from dcops.alerts.alarms.manager import AlarmManager

    m = AlarmManager()
    eng = RuleEngine(default_rules(), m.active_of)
    ups = {"site": "s", "hall": "H1", "device": "UPS-A"}
    (ch,) = m.apply(eng.on_events([Event(1, "snmp_trap", "snmp_trap", ups, attributes={
        "trap_oid": "1.3.6.1.2.1.33.2.3", "name": "upsAlarmBatteryBad"})]))
    assert ch.alarm.probable_cause.value == "batteryFailure" and ch.alarm.component == "UPS-A"
    m.apply(eng.on_events([Event(2, "ups_battery_low", "snmp_trap", ups, "critical", "lowBattery from UPS-A")]))
    (low,) = [a for a in m.alarms.values() if a.probable_cause.value == "batteryDischarging"]
    assert low.severity.value == "critical" and low.active
    (clr,) = m.apply(eng.on_events([Event(3, "ups_battery_ok", "snmp_trap", ups, "cleared")]))
    assert clr.alarm.id == low.id and not clr.alarm.active


def test_event_severity_can_come_from_the_event():
    eng, active = _engine("  - {name: xid, type: event, kinds: [xid], severity_from_event: true,"
                          " event_type: equipmentAlarm, probable_cause: equipmentMalfunction}\n")
    tgt = {"device": "S1", "accel": "0"}
    (s,) = eng.on_events([Event(1, "xid", "nvml", tgt, "critical", attributes={"xid": 79})])
    assert s.severity.value == "critical"
    (s,) = eng.on_events([Event(2, "xid", "nvml", {"device": "S1", "accel": "1"}, "minor", attributes={"xid": 94})])
    assert s.severity.value == "minor"
    assert eng.on_events([Event(3, "xid", "nvml", tgt, "info", attributes={"xid": 1})]) == []


def test_default_pack_follows_the_xid_catalogue():
    """Real XID events (dcops.collectors.xid_events over the shipped catalogue) raise with its severity."""
    from dcops.collectors.xid_events import load_xid_catalogue, xid_event
    from dcops.alerts.alarms.manager import AlarmManager

    cat = load_xid_catalogue()
    m = AlarmManager()
    eng = RuleEngine(default_rules(), m.active_of)
    tgt = {"site": "s", "device": "S1", "accel": "3"}
    m.apply(eng.on_events([xid_event(cat.lookup(79), 1, tgt, "nvml")]))
    (a,) = m.alarms.values()
    assert a.component == "S1:3" and a.severity.value == "critical" and "XID 79" in a.specific_problem


def test_rules_cli_check_json(tmp_path, capsys):
    import json

    from dcops.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text(_rule("  - name: hot\n    type: threshold\n    metric: accel_temp_degc\n    op: '>>'\n    value: 90\n"
                         "    event_type: environmentalAlarm\n    probable_cause: temperatureUnacceptable\n"))
    assert main(["rules", "check", str(bad), "--format", "json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is False and out["problems"][0]["line"] == 5 and out["problems"][0]["field"] == "rules.0.op"
    assert main(["rules", "check", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] and out["rules"] == sum(out["types"].values()) > 0
