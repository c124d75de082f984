"""Incident history on a fixed, hand-computed history (SQLite and PostgreSQL): MTTA and MTTR by
severity, cause, area and week; recurring devices and causes; similar past incidents."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

import pytest

from dcops.alerts.storage.tables import open_engine
from dcops.alerts.history.analysis import IncidentFacts, incident_facts, iso_week, recurring, response_times, similar_incidents
from dcops.alarm_types import PerceivedSeverity as S, ProbableCause as PC
from dcops.cli import main
from tests.runbooks.support import NS, make_incident

T = int(datetime(2026, 11, 2, tzinfo=timezone.utc).timestamp()) * NS   # Monday, ISO week 2026-W45
D = 86400 * NS


def _history(db):
    # id, component, path, cause, severity, opened, ack after (s), resolved after (s), closed after (s)
    rows = [
        ("i1", "R2-01-S01:0", "dc/H1/R2/R2-01/R2-01-S01/0", PC.EQUIPMENT_MALFUNCTION, S.CRITICAL, T, 120, 1800, None),
        ("i2", "R2-01-S01:0", "dc/H1/R2/R2-01/R2-01-S01/0", PC.EQUIPMENT_MALFUNCTION, S.CRITICAL, T + D, 60, 600, None),
        ("i3", "CRAC-1", "dc/H1/CRAC-1", PC.HEATING_VENT_COOLING, S.MAJOR, T + 2 * D, 300, 3600, 7200),
        ("i4", "UPS-A", "dc/H1/UPS-A", PC.COMMERCIAL_POWER_FAILURE, S.MAJOR, T + 8 * D, None, None, 900),
        ("i5", "R2-02-S01:1", "dc/H1/R2/R2-02/R2-02-S01/1", PC.PERFORMANCE_DEGRADED, S.MINOR, T + 9 * D, 30, None, None),
    ]
    for iid, comp, path, cause, sev, t0, ack, res, closed in rows:
        make_incident(db, iid=iid, component=comp, managed_object=path, cause=cause, severity=sev, opened_ns=t0,
                      acknowledged_ns=t0 + ack * NS if ack is not None else None,
                      resolved_ns=t0 + res * NS if res is not None else None,
                      closed_ns=t0 + closed * NS if closed is not None else None)


@pytest.fixture
def facts(db_url, small_inventory):
    db = open_engine(db_url)
    _history(db)
    yield incident_facts(db, small_inventory)
    db.dispose()


def _table(stats):
    return {s.group: (s.incidents, s.acknowledged, s.resolved, s.mtta_s, s.mttr_s) for s in stats}


def test_facts_read_back(facts):
    assert [f.id for f in facts] == ["i1", "i2", "i3", "i4", "i5"]
    i1 = facts[0]
    assert (i1.kind, i1.hall, i1.row, i1.device, i1.cause) == ("accel", "H1", "R2", "R2-01-S01", "equipmentMalfunction")
    assert facts[3].tta_s is None and facts[3].ttr_s == 900.0       # closed without a resolve: closing ends it
    assert facts[2].ttr_s == 3600.0                                  # resolved before closed: the resolve counts


def test_mtta_mttr_by_severity(facts):
    assert _table(response_times(facts, "severity")) == {
        "critical": (2, 2, 2, 90.0, 1200.0),
        "major": (2, 1, 2, 300.0, 2250.0),
        "minor": (1, 1, 0, 30.0, None),
    }
    assert [s.group for s in response_times(facts, "severity")] == ["critical", "major", "minor"]
    assert _table(response_times(facts, "all")) == {"all": (5, 4, 4, 127.5, 1725.0)}


def test_mtta_mttr_by_cause_area_and_week(facts):
    assert _table(response_times(facts, "cause")) == {
        "equipmentMalfunction": (2, 2, 2, 90.0, 1200.0),
        "heatingVentCoolingSystemProblem": (1, 1, 1, 300.0, 3600.0),
        "commercialPowerFailure": (1, 0, 1, None, 900.0),
        "performanceDegraded": (1, 1, 0, 30.0, None),
    }
    assert _table(response_times(facts, "area")) == {
        "H1/R2": (3, 3, 2, 70.0, 1200.0),
        "H1": (2, 1, 2, 300.0, 2250.0),
    }
    assert iso_week(T) == "2026-W45"
    assert _table(response_times(facts, "week")) == {
        "2026-W45": (3, 3, 3, 160.0, 2000.0),
        "2026-W46": (2, 1, 1, 30.0, 900.0),
    }
    with pytest.raises(ValueError, match="cannot group by"):
        response_times(facts, "colour")


def test_recurring_devices_and_causes(facts):
    rec = {(r.what, r.key): (r.count, r.incident_ids) for r in recurring(facts)}
    assert rec == {("device", "R2-01-S01:0"): (2, ("i1", "i2")), ("cause", "equipmentMalfunction"): (2, ("i1", "i2"))}
    assert len(recurring(facts, min_count=1)) == 4 + 4   # 4 distinct devices, 4 distinct causes


def test_similar_incidents(facts):
    new = dataclasses.replace(facts[1], id="new", title="XID 79", state="open", opened_ns=T + 10 * D,
                              acknowledged_ns=None, resolved_ns=None, closed_ns=None)
    got = similar_incidents(new, facts, k=3)
    assert [g.incident_id for g in got[:2]] == ["i2", "i1"]   # equally near: the most recent first
    assert got[0].distance == pytest.approx(0.0, abs=1e-6) and set(got[0].shared) >= {"same cause", "same device"}
    assert got[2].incident_id == "i5"                         # same kind and row, other cause
    # a telemetry signature separates otherwise equal incidents
    sigs = {"i1": {"accel_temp_degc": 2.0}, "i2": {"accel_temp_degc": 0.0}, "new": {"accel_temp_degc": 0.0}}
    assert similar_incidents(new, facts, sigs, k=1)[0].incident_id == "i2"
    assert similar_incidents(new, [], k=3) == []


def test_cli_stats(db_url, capsys, tmp_path):
    if not db_url.startswith("sqlite"):
        pytest.skip("by design: the CLI is exercised once, on SQLite")
    db = open_engine(db_url)
    _history(db)
    db.dispose()
    assert main(["incidents", "stats", "--db", db_url, "--by", "severity"]) == 0
    out = capsys.readouterr().out
    assert "critical" in out and "90s" in out and "1200s" in out and "R2-01-S01:0" in out
