"""Item 8 of issue 13: late events carry their own timestamps and must not be lost.

A double-bit ECC error (XID 48) is stamped at the fault; the NVML poll that sees the ECC
counter jump arrives first and raises the rate alarm; the XID event, older than that alarm's
last change, used to be dropped as stale, and the rate alarm cleared inside group_wait: no
incident. Order is now kept per source (rule), so the XID joins the alarm.
"""

from __future__ import annotations

from dcops.alarm_types import TimelineKind
from dcops.alerts.alarms.manager import AlarmManager
from tests.alerts.outage_scenarios import NS, T0, sig
from tests.alerts.test_sim_incidents import RECEIVER, _settle

GPU = "R1-01-S01:0"


def test_a_late_event_from_another_rule_joins_the_alarm_and_keeps_it_active():
    m = AlarmManager()
    (raised,) = m.apply([sig(10, GPU, "gpu_ecc_uncorrected")])
    (changed,) = m.apply([sig(4, GPU, "gpu_xid_fatal", xid="48")])      # stamped at the fault, 6 s late
    a = m.get(raised.alarm.id)
    assert changed.kind is TimelineKind.ALARM_CHANGED
    assert a.raised_ns == T0 + 4 * NS and a.changed_ns == T0 + 10 * NS  # began at the fault; time never goes back
    assert set(a.rule.split(",")) == {"gpu_ecc_uncorrected", "gpu_xid_fatal"}
    assert m.apply([sig(20, GPU, "gpu_ecc_uncorrected", active=False)]) == [] or m.get(a.id).active
    assert m.get(a.id).active                                             # the XID still holds it


def test_replays_of_the_same_rule_are_still_ignored():
    m = AlarmManager()
    (raised,) = m.apply([sig(10, GPU, "gpu_ecc_uncorrected")])
    (cleared,) = m.apply([sig(20, GPU, "gpu_ecc_uncorrected", active=False)])
    assert cleared.kind is TimelineKind.ALARM_CLEARED
    assert m.apply([sig(10, GPU, "gpu_ecc_uncorrected")]) == []           # a replay from before the clear
    assert not m.get(raised.alarm.id).active


def test_a_late_event_reopens_an_alarm_cleared_meanwhile_from_the_fault_time():
    m = AlarmManager()
    (raised,) = m.apply([sig(10, GPU, "gpu_ecc_uncorrected")])
    m.apply([sig(20, GPU, "gpu_ecc_uncorrected", active=False)])
    (again,) = m.apply([sig(4, GPU, "gpu_xid_fatal", xid="48")])
    a = again.alarm
    assert a.active and a.id == raised.alarm.id and a.raised_ns == T0 + 4 * NS and a.changed_ns == T0 + 20 * NS


def test_ecc_double_bit_error_opens_an_incident_in_the_simulator(sim_run):
    run = sim_run(seed=5, cfg_text=RECEIVER)
    _settle(run)
    t_fault = run.sim.now_ns
    run.sim.inject("gpu_ecc_dbe", GPU, duration_s=600)
    run.steps(12)                      # 2 minutes: past group_wait
    incidents = run.repo.list_incidents()
    assert len(incidents) == 1 and incidents[0].root_component == GPU
    (alarm,) = [a for a in run.repo.list_alarms() if a.component == GPU]
    assert alarm.active and "gpu_xid_fatal" in alarm.rule and alarm.raised_ns <= t_fault + 10 * NS
    assert [n.action.value for n in run.repo.notifications()] == ["trigger"]


def test_after_a_restart_a_replayed_raise_cannot_reopen_a_cleared_alarm():
    """Messages replayed from the last committed offset after a crash are older than what the
    database says; with no per-rule record yet, the alarm's last change decides, as before."""
    m = AlarmManager()
    (raised,) = m.apply([sig(10, "PDU-B2", "pdu_breaker_trip")])
    m.apply([sig(12, "PDU-B2", "pdu_breaker_open")])
    m.apply([sig(30, "PDU-B2", "pdu_breaker_open", active=False), sig(30, "PDU-B2", "pdu_breaker_trip", active=False)])
    stored = m.get(raised.alarm.id)
    assert not stored.active
    m2 = AlarmManager()
    m2.load([stored])
    assert m2.apply([sig(20, "PDU-B2", "pdu_breaker_open")]) == []     # replayed sample from before the clear
    assert not m2.get(stored.id).active
