"""Profiles as data: loading, validation errors, detection, and the pure varbind mapping
checked against what LibreNMS reads from the same real recordings."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest

from dcops.collectors.snmp_mapping import Snapshot, map_snapshot, map_snapshot_full, readings_to_batches, snapshot_from_pairs
from dcops.collectors.snmp_profiles import DATA_DIR, answered_probes, choose_profile, default_profiles, load_profiles, match_profile
from dcops.yamlconf import ConfigError
from tests.conftest import shared_data
from tests.integration.snmp_fixtures import compare_with_librenms, librenms_sensors, read_snmprec

# every recording, the profile its identity and probe tables must pick (vendor family first)
EXPECTED_PROFILE = {
    "akcp_serverprobe8": "akcp-sensorprobe", "apc-epdu_epdu1116s": "apc-epdu", "apc-netbotz_netbotz750": "apc-netbotz",
    "apc_airfm": "apc-airfm", "apc_ap7900b": "apc-rpdu", "apc_ats": "apc-ats", "apc_inrow-dx": "apc-inrow",
    "apc_isx-pdu": "apc-xpdu", "apc_smt750x-nmc2": "apc-ups", "apc_smtl1000-nmc3": "apc-ups", "apc_symmetralx": "apc-ups+ups-mib",
    "apc_uniflair-sp": "apc-inrow", "avtech_roomalert32s": "avtech-roomalert", "cyberpower": "cyberpower+ups-mib",
    "cyberpower_cp1000pfclcd": "cyberpower+ups-mib", "dell-rpdu": "dell-rpdu", "deltaups": "ups-mib",
    "eaton-mgeups_93ps": "eaton-mgeups", "eaton-mgeups_9px": "eaton-mgeups", "eatonpdu_2": "eaton-epdu",
    "eatonups": "eaton-xups", "enlogic-pdu_v2": "enlogic-pdu", "generex-ups_cs141": "ups-mib", "gude-esb_7214-12": "gude-esb",
    "hpe-mapdu_pdu2": "hpe-mapdu", "huaweiups_ups2000": "ups-mib", "janitza-umg96_umg96": "janitza-umg",
    "liebert": "liebert-ups", "liebert_weblbds": "liebert-ups", "netvision-rfc": "netvision", "panduit": "panduit-pdu",
    "poweralert_pdu": "tripplite-pdu", "poweralert_ups": "tripplite-ups", "raritan-pdu": "raritan-px1",
    "raritan-pdu_px2-temp": "raritan-pdu2", "raritan-pdu_px2": "raritan-pdu2", "rittal-cmc-iii-pu_compact": "rittal-cmc3",
    "rittal-cmc": "rittal-cmc-tc", "sensatronics-em1": "sensatronics", "sentry3_3phase": "sentry3",
    "sentry3_switched": "sentry3", "socomec-ups": "socomec-ups",
}
RECORDINGS = sorted(EXPECTED_PROFILE)
# where we and LibreNMS disagree on purpose: AKCP humidity probes flagged offline (online column = 2)
# are reported missing ("probe offline"); LibreNMS shows their last value
KNOWN_DISAGREEMENTS = {"akcp_serverprobe8": 5}


def _detect(rec, profiles=None):
    profiles = default_profiles() if profiles is None else profiles
    keys = sorted(rec)
    probes = answered_probes(profiles, lambda o: any(k == o or k.startswith(o + ".") for k in keys))
    return choose_profile(profiles, str(rec.get("1.3.6.1.2.1.1.2.0", "")), str(rec.get("1.3.6.1.2.1.1.1.0", "")), probes)


@pytest.mark.parametrize("name, expected", [("deltaups", "ups-mib"), ("cyberpower", "ups-mib"),
                                            ("sentry3_switched", None), ("akcp_serverprobe8", None)])
def test_standard_profiles_alone_pick_only_standard_mibs(name, expected):
    """bench/snmp_coverage.py's "unknown vendor" score hands poll_agent only the standard profiles:
    auto-detection then falls back to the standard MIBs the device answers, or to nothing."""
    standard = {n: p for n, p in default_profiles().items() if p.standard}
    assert {"ups-mib", "entity-sensor"} <= set(standard)
    profile = _detect(read_snmprec(shared_data("snmprec", f"{name}.snmprec")), standard)
    assert (profile.name if profile else None) == expected


def test_every_recording_is_in_the_data_set():
    assert sorted(f.stem for f in shared_data("snmprec").glob("*.snmprec")) == RECORDINGS


@pytest.mark.parametrize("name", RECORDINGS)
def test_recording_maps_every_librenms_sensor(name):
    rec = read_snmprec(shared_data("snmprec", f"{name}.snmprec"))
    sensors = librenms_sensors(shared_data("librenms-expected", f"{name}.json"))
    profile = _detect(rec)
    assert profile is not None and profile.name == EXPECTED_PROFILE[name]
    readings, missing, problems = map_snapshot_full(profile, snapshot_from_pairs(profile, rec))
    assert problems == []
    assert all(m.reason for m in missing)
    verdicts = compare_with_librenms(name, readings, sensors, rec, missing)
    bad = [v for v in verdicts if not v.ok]
    assert len(bad) == KNOWN_DISAGREEMENTS.get(name, 0), f"{len(bad)}/{len(verdicts)} sensors differ: {bad[:5]}"


def test_sentinels_are_missing_with_a_reason_never_readings():
    rec = read_snmprec(shared_data("snmprec", "netvision-rfc.snmprec"))  # 65535 in five UPS-MIB fields
    p = default_profiles()["netvision"]
    readings, missing, _ = map_snapshot_full(p, snapshot_from_pairs(p, rec))
    assert not any(r.value in (65535, 6553.5) for r in readings)
    why = {m.oid: m.reason for m in missing}
    assert "sentinel value 65535" in why["1.3.6.1.2.1.33.1.2.3.0"]
    snap = Snapshot(scalars={"1.3.6.1.2.1.33.1.2.4.0": "notsupported", "1.3.6.1.2.1.33.1.2.2.0": -2147483648,
                             "1.3.6.1.2.1.33.1.2.7.0": 2 ** 64 - 1, "1.3.6.1.2.1.33.1.4.1.0": 9})
    readings, missing, problems = map_snapshot_full(default_profiles()["ups-mib"], snap)
    assert readings == [] and problems == []
    why = {m.oid: m.reason for m in missing}
    assert "notsupported" in why["1.3.6.1.2.1.33.1.2.4.0"]
    assert "-2147483648" in why["1.3.6.1.2.1.33.1.2.2.0"]
    assert "64-bit" in why["1.3.6.1.2.1.33.1.2.7.0"]
    assert "state 9 is outside the mapped set" in why["1.3.6.1.2.1.33.1.4.1.0"]  # reported, not dropped


def test_unknown_model_of_a_known_family_and_unknown_vendor_degrade_gracefully():
    profs = default_profiles()
    ups_probe = {"1.3.6.1.2.1.33.1.1"}
    # an APC sysObjectID we have never seen, answering the ATS tables: the family's ATS profile
    assert choose_profile(profs, "1.3.6.1.4.1.318.1.3.99", "", {"1.3.6.1.4.1.318.1.1.8.5"}).name == "apc-ats"
    # an unknown vendor with the UPS-MIB and ENTITY-SENSOR-MIB: both standard profiles, combined
    p = choose_profile(profs, "1.3.6.1.4.1.99999.1", "Acme UPS", ups_probe | {"1.3.6.1.2.1.99.1.1.1.4"})
    assert p.name == "ups-mib+entity-sensor" and p.standard
    # one identity, two families (Eaton's legacy NMC reports the MGE UPS sysObjectID): the probe decides
    assert choose_profile(profs, "1.3.6.1.4.1.705.1", "", {"1.3.6.1.4.1.534.10.2.2"}).name == "eaton-ats"
    assert choose_profile(profs, "1.3.6.1.4.1.705.1", "", set()).name == "eaton-mgeups"
    # nothing known answers: no profile (the poller says so with the identity)
    assert choose_profile(profs, "1.3.6.1.4.1.99999.1", "Acme", set()) is None


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
    readings, missing, problems = map_snapshot_full(p, snap)
    assert {r.metric for r in readings} == {"ups_battery_temp_degc", "ups_output_voltage_v"}
    assert len(problems) == 2 and "1.3.6.1.2.1.33.1.2.4.0" in problems[0]
    assert {m.reason for m in missing} == {"not a number"}


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
