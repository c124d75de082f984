"""Trap mapping as data: snmpTrapOID (and a detail varbind) -> event kind and severity."""

from __future__ import annotations

import pytest

from dcops.collectors.snmp_profiles import DATA_DIR
from dcops.collectors.snmp_traps import SNMP_TRAP_OID, SYS_UPTIME, TrapUser, load_trap_table, map_notification
from dcops.catalogue import EVENT_KINDS
from dcops.yamlconf import ConfigError

DEVICES = {"10.0.0.5": {"site": "s", "hall": "H1", "device": "UPS-A"}}


def _vbs(trap_oid, *more):
    return [(SYS_UPTIME, 1234), (SNMP_TRAP_OID, trap_oid), *more]


def test_table_kinds_are_catalogued_and_cover_the_issue():
    table = load_trap_table()
    kinds = {r.kind for r in table.values()} | {d.kind for r in table.values() for d in r.details.values()}
    assert kinds <= set(EVENT_KINDS)
    assert {"ups_on_battery", "ups_on_utility", "ups_battery_low", "ups_overload", "pdu_overload",
            "breaker_trip", "breaker_closed", "cooling_fault", "cooling_recovered"} <= kinds


def test_plain_trap_maps_by_oid():
    e = map_notification(load_trap_table(), "10.0.0.5:40000", _vbs("1.3.6.1.4.1.318.0.5"), DEVICES, 7)
    assert (e.kind, e.severity, e.time_ns, e.source) == ("ups_on_battery", "major", 7, "snmp_trap")
    assert dict(e.target) == DEVICES["10.0.0.5"] and e.attributes["name"] == "upsOnBattery"
    assert "UPS-A" in e.message


def test_alarm_entry_is_refined_by_its_descr_varbind():
    table = load_trap_table()
    added = map_notification(table, "10.0.0.5:1", _vbs("1.3.6.1.2.1.33.2.3", ("1.3.6.1.2.1.33.1.6.2.1.2.4", "1.3.6.1.2.1.33.1.6.3.3")), DEVICES, 1)
    assert (added.kind, added.severity, added.attributes["name"]) == ("ups_battery_low", "critical", "upsAlarmLowBattery")
    removed = map_notification(table, "10.0.0.5:1", _vbs("1.3.6.1.2.1.33.2.4", ("1.3.6.1.2.1.33.1.6.2.1.2.4", "1.3.6.1.2.1.33.1.6.3.8")), DEVICES, 1)
    assert (removed.kind, removed.severity) == ("ups_overload_cleared", "cleared")
    other = map_notification(table, "10.0.0.5:1", _vbs("1.3.6.1.2.1.33.2.3", ("1.3.6.1.2.1.33.1.6.2.1.2.4", "1.3.6.1.2.1.33.1.6.3.24")), DEVICES, 1)
    assert (other.kind, other.severity, other.attributes["name"]) == ("snmp_trap", "warning", "upsTrapAlarmEntryAdded")


def test_unknown_notification_is_kept_with_its_varbinds():
    e = map_notification(load_trap_table(), "192.0.2.9:162", _vbs("1.3.6.1.4.1.99999.0.1", ("1.3.6.1.4.1.99999.1", "x")), DEVICES, 1)
    assert e.kind == "snmp_trap" and e.severity == "indeterminate"
    assert dict(e.target) == {"agent": "192.0.2.9"} and e.attributes["varbinds"] == {"1.3.6.1.4.1.99999.1": "x"}
    assert "1.3.6.1.4.1.99999.0.1" in e.message


def test_uncatalogued_kind_in_the_table_is_a_clear_error(tmp_path):
    f = tmp_path / "traps.yaml"
    f.write_text((DATA_DIR / "traps.yaml").read_text().replace("kind: ups_overload, severity: major}", "kind: ups_overlaod, severity: major}", 1))
    with pytest.raises(ConfigError) as ei:
        load_trap_table(str(f))
    p = ei.value.problems[0]
    assert p.file == str(f) and p.line is not None and "ups_overlaod" in p.message


def test_trap_user_repr_hides_keys():
    u = TrapUser("mon", auth_key="supersecret1", priv_key="supersecret2")
    assert "supersecret" not in repr(u)
