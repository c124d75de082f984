"""Silences and maintenance windows: notifications suppressed, alarms still visible."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from dcops.alerts.alarms.matchers import matches, parse_matcher
from dcops.alerts.alarms.silences import SuppressionIndex, in_effect
from dcops.alarm_types import (Alarm, DeliveryStatus, EventType, MaintenanceWindow, PerceivedSeverity, ProbableCause,
                               Recurrence, Silence, TimelineKind)

NS = 1_000_000_000
RECEIVER = """
receivers:
  - {name: noc, type: webhook, url: "http://127.0.0.1:9/hook"}
route: {receiver: noc}
"""


def _ts(*args) -> int:
    return int(datetime(*args, tzinfo=timezone.utc).timestamp() * NS)


def _alarm(component="R1-03-S01", **labels) -> Alarm:
    return Alarm(id="a1", component=component, managed_object=f"test/H1/R1/R1-03/{component}", event_type=EventType.EQUIPMENT,
                 probable_cause=ProbableCause.UNDERLYING_RESOURCE_UNAVAILABLE, severity=PerceivedSeverity.CRITICAL,
                 specific_problem="down", raised_ns=0, changed_ns=0, labels={"component": component, **labels})


def test_matchers_parse_and_match():
    assert str(parse_matcher('kind=~"ups|pdu"')) == 'kind=~"ups|pdu"'
    assert matches(parse_matcher('kind=~"ups|pdu"'), {"kind": "pdu"})
    assert not matches(parse_matcher('kind=~"ups|pdu"'), {"kind": "pdus"})       # anchored
    assert matches(parse_matcher("rack!=R1-01"), {"rack": "R1-03"})
    assert matches(parse_matcher('row!~"R2"'), {})                               # absent = ""
    with pytest.raises(ValueError, match="not of the form"):
        parse_matcher("kind ~ ups")
    with pytest.raises(ValueError, match="bad regular expression"):
        parse_matcher("kind=~(")


def test_recurring_silence_only_inside_its_weekly_window():
    # Saturdays 22:00 for 4 h, Europe/Berlin (UTC+1 in winter)
    rec = Recurrence(weekdays=(5,), start="22:00", duration_s=4 * 3600, timezone="Europe/Berlin")
    s = Silence("s1", (parse_matcher("kind=server"),), _ts(2026, 1, 1), _ts(2026, 12, 31), "bob", "weekly patching", rec)
    assert in_effect(s, _ts(2026, 11, 28, 21, 30))       # Sat 22:30 Berlin
    assert in_effect(s, _ts(2026, 11, 29, 0, 30))        # Sun 01:30 Berlin, still inside 4 h
    assert not in_effect(s, _ts(2026, 11, 29, 2, 30))    # Sun 03:30 Berlin: over
    assert not in_effect(s, _ts(2026, 11, 27, 21, 30))   # Friday
    assert not in_effect(s, _ts(2027, 1, 2, 21, 30))     # after the silence's end
    expired = Silence("s2", s.matchers, s.starts_ns, s.ends_ns, "bob", "x", None, expired_ns=_ts(2026, 6, 1))
    assert in_effect(expired, _ts(2026, 5, 1)) and not in_effect(expired, _ts(2026, 7, 1))


def test_maintenance_covers_everything_downstream(small_inventory):
    mw = MaintenanceWindow("m1", "PDU-A1", 0, 10 * NS, "bob", "breaker swap")
    idx = SuppressionIndex((), (mw,), small_inventory)
    sup = idx.check(_alarm("R1-03-S01:2"), 5 * NS)
    assert sup.expected and sup.by == ("maintenance:m1",)
    assert not idx.check(_alarm("R2-01-S01"), 5 * NS).by       # fed by PDU-A2/B2: not covered
    assert not idx.check(_alarm("R1-03-S01"), 11 * NS).by      # window over


def test_silence_suppresses_notifications_but_alarms_stay_visible(sim_run):
    run = sim_run(seed=7, cfg_text=RECEIVER)
    run.steps(20)
    now = run.sim.now_ns
    sil = run.repo.create_silence(['kind="cooling"'], now, now + 3600 * NS, "bob", "CRAC vendor visit")
    run.steps(1)
    run.sim.inject("crac_failure", "CRAC-1", duration_s=3600)
    run.steps(12)
    (alarm,) = run.repo.list_alarms()
    assert alarm.component == "CRAC-1" and alarm.active
    assert alarm.suppressed_by == (f"silence:{sil.id}",) and not alarm.expected
    (inc,) = run.repo.list_incidents()
    notes = run.repo.notifications()
    assert notes and {n.status for n in notes} == {DeliveryStatus.SUPPRESSED}
    assert TimelineKind.SUPPRESSED in [e.kind for e in run.repo.get_incident(inc.id).timeline]
    # the silence ends while the incident is still open: now it is notified
    run.repo.expire_silence(sil.id, "bob")
    run.steps(2)
    assert [n.status for n in run.repo.notifications(status="pending")] == [DeliveryStatus.PENDING]
    assert run.repo.list_alarms()[0].suppressed_by == ()


def test_maintenance_window_marks_alarms_expected_and_sends_nothing(sim_run):
    run = sim_run(seed=8, cfg_text=RECEIVER)
    run.steps(20)
    now = run.sim.now_ns
    run.repo.create_maintenance("PDU-A1", now, now + 3600 * NS, "carol", "breaker replacement")
    run.steps(1)
    run.sim.inject("pdu_breaker_trip", "PDU-A1", duration_s=1800)
    run.steps(8)
    alarms = run.repo.list_alarms()
    comps = {a.component for a in alarms}
    assert {"PDU-A1", "R1-03-S01"} <= comps                  # shown, not hidden
    assert all(a.expected and a.suppressed_by for a in alarms)
    assert run.repo.list_alarms(include_expected=False) == []
    assert run.repo.notifications(status="pending") == []


def test_bad_silences_are_refused(sim_run):
    run = sim_run(seed=9)
    with pytest.raises(ValueError, match="end must be after"):
        run.repo.create_silence(["kind=ups"], 10, 5, "bob", "x")
    with pytest.raises(ValueError, match="reason is required"):
        run.repo.create_silence(["kind=ups"], 1, 5, "bob", " ")
    with pytest.raises(ValueError, match="user name is required"):
        run.repo.create_silence(["kind=ups"], 1, 5, "", "x")
    with pytest.raises(KeyError, match="CRAC-9"):
        run.repo.create_maintenance("CRAC-9", 1, 5, "bob", "x")
