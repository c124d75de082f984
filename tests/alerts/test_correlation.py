"""Correlation table, redundancy assessment and inhibition, on hand-made alarms."""

from __future__ import annotations

from dcops.alerts.correlation.correlator import Correlator, InhibitRule, assess_redundancy, inhibited
from dcops.alerts.alarms.matchers import parse_matchers
from dcops.alarm_types import Alarm, EventType, PerceivedSeverity as S, ProbableCause as PC

NS = 1_000_000_000


def A(aid, comp, cause, t=0, sev=S.MAJOR, **labels):
    return Alarm(aid, comp, comp, EventType.EQUIPMENT, cause, sev, "p", t * NS, t * NS, labels={"component": comp, **labels})


def test_cooling_root_explains_downstream_heat_but_not_elsewhere(small_inventory):
    c = Correlator(small_inventory, lookback_s=300)
    alarms = [
        A("crac", "CRAC-1", PC.HEATING_VENT_COOLING, 0, unit_lost="true"),
        A("rack", "R1-02", PC.TEMPERATURE_UNACCEPTABLE, 100),
        A("gpu", "R1-02-S01:1", PC.PERFORMANCE_DEGRADED, 120),
        A("far", "R2-01-S01:1", PC.PERFORMANCE_DEGRADED, 120),       # zone Z2: not explained
        A("old", "R1-01-S01:0", PC.TEMPERATURE_UNACCEPTABLE, -1000),  # long before the root
        A("xid", "R1-01-S02:0", PC.SOFTWARE_ERROR, 50),               # not an effect of cooling
    ]
    parents = c.parents(alarms)
    assert parents == {"rack": "crac", "gpu": "crac"}
    roots = Correlator.roots(parents)
    assert roots == {"rack": "crac", "gpu": "crac"}


def test_chains_follow_to_the_top_and_cycles_are_cut():
    assert Correlator.roots({"a": "b", "b": "c"}) == {"a": "c", "b": "c"}
    r = Correlator.roots({"a": "b", "b": "a"})
    assert set(r) == {"a", "b"}


def test_power_root_explains_host_failures_only_where_no_feed_is_left(small_inventory):
    c = Correlator(small_inventory)
    pdu_b2 = A("b2", "PDU-B2", PC.POWER_SUPPLY_FAILURE, 0, unit_lost="true")
    gpu = A("gpu", "R2-01-S01:0", PC.EQUIPMENT_MALFUNCTION, 10)
    psu = A("psu", "R2-01-S01", PC.POWER_SUPPLY_FAILURE, 10)
    assert c.parents([pdu_b2, gpu, psu]) == {"psu": "b2"}        # feed A still up: the GPU is unrelated
    pdu_a1 = A("a1", "PDU-A1", PC.POWER_SUPPLY_FAILURE, 0, unit_lost="true")
    srv = A("srv", "R1-03-S01", PC.UNDERLYING_RESOURCE_UNAVAILABLE, 10)
    assert c.parents([pdu_a1, srv]) == {"srv": "a1"}              # single-fed rack went dark


def test_redundancy_aware_severity(small_inventory):
    crac1 = A("c1", "CRAC-1", PC.HEATING_VENT_COOLING, sev=S.CRITICAL, unit_lost="true")
    crac2 = A("c2", "CRAC-2", PC.HEATING_VENT_COOLING, sev=S.CRITICAL, unit_lost="true")
    sev, note = assess_redundancy(crac1, {"CRAC-1": [crac1]}, small_inventory)
    assert sev is S.MAJOR and "N+1" in note
    sev, note = assess_redundancy(crac1, {"CRAC-1": [crac1], "CRAC-2": [crac2]}, small_inventory)
    assert sev is S.CRITICAL and "capacity lost" in note
    b1 = A("b1", "PDU-B1", PC.POWER_SUPPLY_FAILURE, sev=S.CRITICAL, unit_lost="true")
    assert assess_redundancy(b1, {"PDU-B1": [b1]}, small_inventory)[0] is S.MAJOR
    a1 = A("a1", "PDU-A1", PC.POWER_SUPPLY_FAILURE, sev=S.CRITICAL, unit_lost="true")
    sev, note = assess_redundancy(a1, {"PDU-A1": [a1]}, small_inventory)
    assert sev is S.CRITICAL and "R1-03" in note
    hot = A("t", "R1-01", PC.TEMPERATURE_UNACCEPTABLE)
    assert assess_redundancy(hot, {}, small_inventory) is None


def test_inhibition_like_alertmanager():
    rule = InhibitRule(parse_matchers(['probable_cause="underlyingResourceUnavailable"']),
                       parse_matchers(['kind="accel"']), ("device",))
    down = A("down", "S1", PC.UNDERLYING_RESOURCE_UNAVAILABLE, device="S1", kind="server",
             probable_cause="underlyingResourceUnavailable")
    g1 = A("g1", "S1:0", PC.EQUIPMENT_MALFUNCTION, device="S1", kind="accel")
    g2 = A("g2", "S2:0", PC.EQUIPMENT_MALFUNCTION, device="S2", kind="accel")
    assert inhibited([down, g1, g2], [rule]) == {"g1": "down"}
    cleared = down.evolve(cleared_ns=5)
    assert inhibited([cleared, g1, g2], [rule]) == {}


def test_second_unit_of_a_redundant_group_joins_the_first(small_inventory):
    c = Correlator(small_inventory)
    c1 = A("c1", "CRAC-1", PC.HEATING_VENT_COOLING, 0, unit_lost="true")
    c2 = A("c2", "CRAC-2", PC.HEATING_VENT_COOLING, 5, unit_lost="true")
    c3 = A("c3", "CRAC-3", PC.HEATING_VENT_COOLING, 5, unit_lost="true")     # another zone
    assert c.parents([c1, c2, c3]) == {"c2": "c1"}
    a2 = A("a2", "PDU-A2", PC.POWER_SUPPLY_FAILURE, 0, unit_lost="true")
    b2 = A("b2", "PDU-B2", PC.POWER_SUPPLY_FAILURE, 1, unit_lost="true")
    b1 = A("b1", "PDU-B1", PC.POWER_SUPPLY_FAILURE, 1, unit_lost="true")    # feeds other racks
    assert c.parents([a2, b2, b1]) == {"b2": "a2"}


def test_surviving_unit_overloaded_by_a_lost_sibling_joins_it(small_inventory):
    c = Correlator(small_inventory)
    a1 = A("a1", "PDU-A1", PC.POWER_SUPPLY_FAILURE, 0, unit_lost="true")
    b1 = A("b1", "PDU-B1", PC.RESOURCE_AT_OR_NEARING_CAPACITY, 30)     # now carries R1-01/R1-02 alone
    c1 = A("c1", "CRAC-1", PC.HEATING_VENT_COOLING, 0, unit_lost="true")
    c2 = A("c2", "CRAC-2", PC.HEATING_VENT_COOLING, 60)                 # supply hot, not lost
    assert c.parents([a1, b1, c1, c2]) == {"b1": "a1", "c2": "c1"}
    b1_first = A("b1", "PDU-B1", PC.RESOURCE_AT_OR_NEARING_CAPACITY, -30)
    assert c.parents([a1, b1_first]) == {}                              # overloaded before: unrelated


def test_a_cleared_root_explains_its_recovery_but_not_a_new_fault(small_inventory):
    """Symptoms that start while the room settles after its cooling returned are the recovery of
    that root (cooling: 900 s by default); a unit lost after it cleared is a fault of its own."""
    c = Correlator(small_inventory, settle_s={"cooling": 900.0})
    crac = A("crac", "CRAC-1", PC.HEATING_VENT_COOLING, 0, unit_lost="true")
    crac = crac.evolve(cleared_ns=600 * NS)
    alarms = [
        crac,
        A("settling", "R1-02-S01:1", PC.PERFORMANCE_DEGRADED, 700),     # 100 s after the clear
        A("warm", "R1-02", PC.TEMPERATURE_UNACCEPTABLE, 620).evolve(cleared_ns=900 * NS),  # the rack still warm
        A("later", "R1-02-S01:2", PC.PERFORMANCE_DEGRADED, 1600),       # 1,000 s after: not its doing
    ]
    assert c.parents(alarms) == {"settling": "crac", "warm": "crac"}
    # a GPU failing meanwhile is a fault of its own, whatever the room did before
    failed = A("xid", "R1-01-S02:0", PC.EQUIPMENT_MALFUNCTION, 700)
    assert "xid" not in c.parents(alarms + [failed])
    assert Correlator(small_inventory, settle_s={"cooling": 0.0}).parents(alarms) == {"settling": "warm"}
    # a second unit of the zone lost after the first came back is its own root, with its own heat
    crac2 = A("crac2", "CRAC-2", PC.HEATING_VENT_COOLING, 650, unit_lost="true")
    assert c.parents(alarms + [crac2]) == {"settling": "crac", "warm": "crac", "later": "crac2"}


def test_two_reports_of_one_hot_accelerator_reach_the_cooling_root_not_each_other(small_inventory):
    """An accelerator of the failed CRAC's zone crosses its temperature limit and throttles in
    the same interval (a busy hour: at a quiet one it never got that hot). Each alarm could
    explain the other on their one unit; they did, a cycle that reached no root, and each such
    accelerator opened an incident of its own (51 for one zone). The first report is the parent
    and finds the CRAC; either order of input."""
    c = Correlator(small_inventory)
    crac = A("crac", "CRAC-1", PC.HEATING_VENT_COOLING, 0, unit_lost="true")
    hot = A("hot", "R1-02-S01:1", PC.TEMPERATURE_UNACCEPTABLE, 560)
    slow = A("slow", "R1-02-S01:1", PC.PERFORMANCE_DEGRADED, 560, sev=S.MINOR)
    for alarms in ([crac, hot, slow], [slow, hot, crac]):
        parents = c.parents(alarms)
        assert parents == {"slow": "crac", "hot": "slow"}, parents
        assert Correlator.roots(parents) == {"slow": "crac", "hot": "crac"}
    later = A("later", "R1-02-S01:1", PC.TEMPERATURE_UNACCEPTABLE, 600)
    assert c.parents([crac, slow, later]) == {"slow": "crac", "later": "slow"}
    alone = [A("hot2", "R2-01-S01:0", PC.TEMPERATURE_UNACCEPTABLE, 10), A("slow2", "R2-01-S01:0", PC.PERFORMANCE_DEGRADED, 10)]
    assert c.parents(alone) == {"hot2": "slow2"}  # no cause upstream: one incident, rooted at the first report
