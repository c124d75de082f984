"""Alarm manager: dedup on (object, probable cause), list lifecycle, flapping, replays."""

from __future__ import annotations

from dcops.alerts.alarms.manager import AlarmManager, FlapPolicy
from dcops.alerts.alarms.signals import AlarmSignal
from dcops.alarm_types import AlarmListState, EventType, PerceivedSeverity as S, ProbableCause as PC, TimelineKind

NS = 1_000_000_000


def sig(t, active=True, rule="r1", comp="R1-01-S01:0", cause=PC.EQUIPMENT_MALFUNCTION, sev=S.MAJOR, text="x"):
    return AlarmSignal(int(t * NS), comp, rule, active, sev, EventType.EQUIPMENT, cause, text)


def test_dedup_on_object_and_probable_cause(small_inventory):
    m = AlarmManager(small_inventory)
    (ch,) = m.apply([sig(0, rule="accel_lost", sev=S.CRITICAL, text="lost")])
    assert ch.kind is TimelineKind.ALARM_RAISED
    a = ch.alarm
    assert a.managed_object == "test/H1/R1/R1-01/R1-01-S01/0"
    assert a.labels["rack"] == "R1-01" and a.labels["kind"] == "accel" and a.labels["vendor"] == "nvidia"
    # the same object and cause from another rule: one alarm, no new row
    assert m.apply([sig(1, rule="gpu_xid_fatal", sev=S.MAJOR, text="XID 79")]) == [] or len(m.alarms) == 1
    assert len(m.alarms) == 1
    # another cause on the same object is another alarm
    m.apply([sig(2, cause=PC.TEMPERATURE_UNACCEPTABLE)])
    assert len(m.alarms) == 2
    # clears only when every rule feeding it has cleared
    assert m.apply([sig(3, False, rule="accel_lost")]) == [] or m.get(a.id).active
    assert m.get(a.id).severity is S.MAJOR and m.get(a.id).active
    (ch,) = m.apply([sig(4, False, rule="gpu_xid_fatal")])
    assert ch.kind is TimelineKind.ALARM_CLEARED and ch.alarm.cleared_ns == 4 * NS


def test_noc_list_lifecycle():
    m = AlarmManager()
    a = m.apply([sig(0)])[0].alarm
    assert a.list_state is AlarmListState.ACTIVE_UNACKNOWLEDGED
    a = m.acknowledge(a.id, "alice", 1 * NS).alarm
    assert a.list_state is AlarmListState.ACTIVE_ACKNOWLEDGED and a.acknowledged_by == "alice"
    a = m.apply([sig(2, False)])[0].alarm
    assert a.list_state is AlarmListState.CLEARED_ACKNOWLEDGED and not a.listed
    assert a.id not in m.alarms
    # cleared but unacknowledged stays listed; a new raise re-activates it (count + 1)
    b = m.apply([sig(3)])[0].alarm
    assert b.id != a.id
    m.apply([sig(4, False)])
    assert m.get(b.id).list_state is AlarmListState.CLEARED_UNACKNOWLEDGED
    c = m.apply([sig(5)])[0].alarm
    assert c.id == b.id and c.count == 2 and c.active


def test_flapping_is_damped():
    m = AlarmManager(flap=FlapPolicy(window_s=600, max_raises=3, hold_s=120))
    changes = []
    t = 0
    for _ in range(6):  # raise/clear every 10 s
        changes += m.apply([sig(t)])
        changes += m.apply([sig(t + 5, False)])
        t += 10
    raised = [c for c in changes if c.kind is TimelineKind.ALARM_RAISED]
    cleared = [c for c in changes if c.kind is TimelineKind.ALARM_CLEARED]
    assert len(m.alarms) == 1
    (a,) = m.alarms.values()
    assert a.flapping and a.active                        # clears held while flapping
    assert len(raised) == 3 and len(cleared) == 2         # the flapping stopped the churn
    assert m.tick(t * NS + 60 * NS) == []                 # held for hold_s
    (ch,) = m.tick(t * NS + 200 * NS)
    assert ch.kind is TimelineKind.ALARM_CLEARED and not ch.alarm.flapping


def test_stale_signals_are_ignored():
    m = AlarmManager()
    a = m.apply([sig(10)])[0].alarm
    m.apply([sig(20, False)])
    assert m.apply([sig(15)]) == []          # replayed raise from before the clear
    assert not m.get(a.id).active


def test_load_restores_active_rules():
    m = AlarmManager()
    a = m.apply([sig(0, rule="r1"), sig(0, rule="r2")])[0].alarm
    a = m.get(a.id)
    m2 = AlarmManager()
    m2.load([a])
    assert m2.active_of("r1") == {"R1-01-S01:0"} and m2.active_of("r2") == {"R1-01-S01:0"}
    assert m2.apply([sig(1, False, rule="r1")]) == [] or m2.get(a.id).active
    assert m2.apply([sig(2, False, rule="r2")])[0].kind is TimelineKind.ALARM_CLEARED
