"""Profiles as data: loading, validation errors, detection, and the pure varbind mapping
checked against what LibreNMS reads from the same real recordings."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest

from dcops.collectors.snmp_mapping import Snapshot, map_snapshot, readings_to_batches, snapshot_from_pairs
from dcops.collectors.snmp_profiles import DATA_DIR, answered_probes, choose_profile, default_profiles, load_profiles, match_profile
from dcops.yamlconf import ConfigError
from tests.conftest import shared_data
from tests.integration.snmp_fixtures import compare_with_librenms, librenms_sensors, read_snmprec

RECORDINGS = [
    "apc-netbotz_netbotz750", "apc_ap7900b", "apc_inrow-dx", "apc_smt750x-nmc2", "cyberpower",
    "eaton-mgeups_9px", "liebert", "netvision-rfc", "raritan-pdu_px2", "sentry3_switched",
]
EXPECTED_PROFILE = {
    "apc-netbotz_netbotz750": "apc-netbotz", "apc_ap7900b": "apc-rpdu", "apc_inrow-dx": "apc-inrow",
    "apc_smt750x-nmc2": "apc-ups", "cyberpower": "cyberpower", "eaton-mgeups_9px": "eaton-mgeups",
    "liebert": "liebert-ups", "netvision-rfc": "netvision", "raritan-pdu_px2": "raritan-pdu2",
    "sentry3_switched": "sentry3",
}


def _detect(rec):
    keys = sorted(rec)
    probes = answered_probes(default_profiles(), lambda o: any(k == o or k.startswith(o + ".") for k in keys))
    return choose_profile(default_profiles(), str(rec.get("1.3.6.1.2.1.1.2.0", "")), str(rec.get("1.3.6.1.2.1.1.1.0", "")), probes)


@pytest.mark.parametrize("name", RECORDINGS)
def test_recording_maps_every_librenms_sensor(name):
    rec = read_snmprec(shared_data("snmprec", f"{name}.snmprec"))
    sensors = librenms_sensors(shared_data("librenms-expected", f"{name}.json"))
    profile = _detect(rec)
    assert profile is not None and profile.name == EXPECTED_PROFILE[name]
    readings, problems = map_snapshot(profile, snapshot_from_pairs(profile, rec))
    assert problems == []
    verdicts = compare_with_librenms(name, readings, sensors, rec)
    bad = [v for v in verdicts if not v.ok]
    assert not bad, f"{len(bad)}/{len(verdicts)} sensors differ: {bad[:5]}"


def test_units_are_converted_to_canonical():
    rec = read_snmprec(shared_data("snmprec", "cyberpower.snmprec"))
    p = default_profiles()["cyberpower"]
    readings, _ = map_snapshot(p, snapshot_from_pairs(p, rec))
    by = {r.metric: r for r in readings}
    assert by["env_temp_degc"].unit == "degC"
    assert by["env_temp_degc"].value == pytest.approx((68.3 - 32) * 5 / 9)  # 683 tenths of degF
    assert by["ups_battery_runtime_s"].value == pytest.approx(1740.0)       # 174000 TimeTicks


def test_every_profile_metric_is_catalogued_and_loads():
    profiles = default_profiles()
    assert len(profiles) >= 15
    for p in profiles.values():
        assert p.sensors, p.name


def test_match_prefers_longest_sysobjectid_then_descr():
    ps = default_profiles()
    assert match_profile(ps, "1.3.6.1.4.1.318.1.3.4.8", "").name == "apc-rpdu"
    assert match_profile(ps, ".1.3.6.1.4.1.318.1.3.14.23", "").name == "apc-inrow"
    assert match_profile(ps, "1.3.6.1.4.1.99999.1", "Schneider Electric NetBotz 750").name == "apc-netbotz"
    assert match_profile(ps, "1.3.6.1.4.1.8072.3.2.10", "Linux box") is None
    # the probe decides for a generic sysObjectID
    assert choose_profile(ps, "1.3.6.1.4.1.8072.3.2.10", "Linux", {"1.3.6.1.2.1.33.1.1"}).name == "ups-mib"


def _copy_data(tmp_path: Path) -> Path:
    dst = tmp_path / "snmp"
    shutil.copytree(DATA_DIR, dst)
    return dst


def test_unknown_metric_is_a_clear_error(tmp_path):
    d = _copy_data(tmp_path)
    f = d / "profiles" / "sentry3.yaml"
    f.write_text(f.read_text().replace("metric: pdu_voltage_v", "metric: pdu_volts"))
    with pytest.raises(ConfigError) as ei:
        load_profiles(d)
    msg = str(ei.value)
    assert "sentry3.yaml" in msg and "pdu_volts" in msg and "not in the catalogue" in msg


def test_unit_that_does_not_fit_the_metric_is_rejected(tmp_path):
    d = _copy_data(tmp_path)
    f = d / "profiles" / "cyberpower.yaml"
    f.write_text(f.read_text().replace("metric: env_temp_degc, unit: degF", "metric: env_temp_degc, unit: kW"))
    with pytest.raises(ConfigError) as ei:
        load_profiles(d)
    assert "converts to W" in str(ei.value) and "cyberpower.yaml" in str(ei.value)


def test_bad_field_names_file_and_line(tmp_path):
    d = _copy_data(tmp_path)
    f = d / "profiles" / "netvision.yaml"
    f.write_text(f.read_text() + "colums: []\n")
    with pytest.raises(ConfigError) as ei:
        load_profiles(d)
    p = ei.value.problems[0]
    assert p.file.endswith("netvision.yaml") and p.line is not None and p.field == "colums"


def test_unexpected_types_become_problems_not_exceptions():
    p = default_profiles()["ups-mib"]
    snap = Snapshot(scalars={"1.3.6.1.2.1.33.1.2.4.0": "not a number", "1.3.6.1.2.1.33.1.2.7.0": 31},
                    tables={"1.3.6.1.2.1.33.1.4.4.1.2": {"1": b"230"}, "1.3.6.1.2.1.33.1.4.4.1.3": {"1": object()}})
    readings, problems = map_snapshot(p, snap)
    assert {r.metric for r in readings} == {"ups_battery_temp_degc", "ups_output_voltage_v"}
    assert len(problems) == 2 and "1.3.6.1.2.1.33.1.2.4.0" in problems[0]


def test_readings_become_batches_per_measurement():
    rec = read_snmprec(shared_data("snmprec", "apc_smt750x-nmc2.snmprec"))
    p = default_profiles()["apc-ups"]
    readings, _ = map_snapshot(p, snapshot_from_pairs(p, rec))
    batches = {b.measurement: b for b in readings_to_batches(readings, {"site": "s", "hall": "H1", "device": "UPS-A", "row": "R1", "rack": "R1-01"}, 123)}
    assert set(batches) == {"ups", "env"}
    ups = batches["ups"]
    assert list(ups.tags) == ["site", "hall", "device", "index"]
    row = list(ups.tags["index"]).index("")
    assert ups.fields["ups_battery_charge_pct"][row] == pytest.approx(100.0)  # high precision wins
    assert ups.fields["ups_on_battery"][row] == 0.0
    env = batches["env"]
    assert env.tags["rack"][0] == "R1-01" and env.fields["env_temp_degc"][0] == 20.0
    assert all(math.isfinite(v) for v in ups.fields["ups_input_voltage_v"])


def test_entity_sensor_scale_precision_and_type():
    p = default_profiles()["entity-sensor"]
    base = "1.3.6.1.2.1.99.1.1.1"
    snap = Snapshot(tables={
        f"{base}.4": {"10": 2305, "11": 1520, "12": 245, "13": 7},
        f"{base}.1": {"10": 3, "11": 5, "12": 8, "13": 12},      # voltsAC, amperes, celsius, truthvalue
        f"{base}.2": {"10": 9, "11": 8, "12": 9, "13": 9},       # units, milli, units, units
        f"{base}.3": {"10": 1, "11": 0, "12": 1, "13": 0},       # precision
        "1.3.6.1.2.1.47.1.1.1.1.7": {"10": "Inlet voltage", "11": "Inlet current", "12": "Ambient"},
    })
    readings, problems = map_snapshot(p, snap)
    by = {r.metric: r for r in readings}
    assert problems == [] and set(by) == {"pdu_voltage_v", "pdu_current_a", "env_temp_degc"}  # truthvalue: no metric
    assert by["pdu_voltage_v"].value == pytest.approx(230.5) and by["pdu_voltage_v"].description == "Inlet voltage"
    assert by["pdu_current_a"].value == pytest.approx(1.52)
    assert by["env_temp_degc"].value == pytest.approx(24.5) and by["env_temp_degc"].index == "12"
