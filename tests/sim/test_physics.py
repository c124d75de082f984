"""The simulator's physics: cause and effect along power and cooling, compared with a twin.

Each test runs two simulators with the same seed, one with a fault, so every difference is
caused by the fault and not by load or noise.
"""

from __future__ import annotations

import numpy as np
import pytest

from dcops.sim import Simulator

START = 1_750_000_000 * 10**9


def twins(site, seed=3):
    return Simulator(site, seed=seed, start_ns=START), Simulator(site, seed=seed, start_ns=START)


def rack_values(sim, metric):
    batch = next(b for b in sim.batches() if b.measurement == "rack")
    return dict(zip(batch.tags["rack"], batch.fields[metric]))


def test_same_seed_same_samples(small_site):
    a, b = twins(small_site)
    a.run(30)
    b.run(30)
    for x, y in zip(a.batches(), b.batches()):
        assert x.measurement == y.measurement
        for k in x.fields:
            np.testing.assert_array_equal(x.fields[k], y.fields[k])


def test_different_seeds_differ(small_site):
    a, b = Simulator(small_site, seed=1, start_ns=START), Simulator(small_site, seed=2, start_ns=START)
    a.run(5)
    b.run(5)
    assert not np.allclose(a.accel_values()["accel_power_w"], b.accel_values()["accel_power_w"])


def test_crac_failure_heats_its_zone_only(small_site):
    base, hit = twins(small_site)
    hit.inject("crac_failure", "CRAC-1")  # zone Z1 = row R1
    base.run(90)
    hit.run(90)
    inv = hit.inventory
    for i, rack in enumerate(hit.rack_names):
        rise = hit.r_inlet[i] - base.r_inlet[i]
        if inv.get(rack).row == "R1":
            assert rise > 2.0, f"{rack} inlet rose only {rise:.2f} degC"
        else:
            assert abs(rise) < 0.05, f"{rack} outside the zone changed by {rise:.2f} degC"
    # the accelerators in the zone run hotter too
    r1 = inv.accel_tags["row"] == "R1"
    assert (hit.temp[r1] - base.temp[r1]).mean() > 2.0
    assert np.abs(hit.temp[~r1] - base.temp[~r1]).max() < 0.05


def test_breaker_trip_drops_exactly_the_racks_it_feeds(small_site):
    base, hit = twins(small_site)
    label = hit.inject("pdu_breaker_trip", "PDU-A1")
    base.step()
    hit.step()
    fed = set(hit.inventory.racks_of_pdu["PDU-A1"])
    assert fed == {"R1-01", "R1-02", "R1-03"}
    assert set(label.affected) >= fed | {"PDU-A1"}
    feed_a = rack_values(hit, "rack_feed_a_power_w")
    feed_b = rack_values(hit, "rack_feed_b_power_w")
    for rack in fed:
        assert feed_a[rack] == 0.0
    # dual-fed racks keep running on feed B; the single-fed rack goes dark
    servers = dict(zip(hit.server_names, hit.s_up))
    assert servers["R1-01-S01"] and servers["R1-02-S02"]
    assert not servers["R1-03-S01"]
    assert feed_b["R1-01"] > 0 and feed_b["R1-01"] == pytest.approx(hit.r_power[hit._ri["R1-01"]], rel=0.02)  # meter gain error
    lost = hit.inventory.accel_tags["rack"] == "R1-03"
    assert (hit.accel_values()["accel_up"][lost] == 0).all()
    # racks fed by other PDUs are untouched
    for i, rack in enumerate(hit.rack_names):
        if rack not in fed:
            assert hit.r_power[i] == base.r_power[i]
    kinds = [e.kind for e in hit.events_since(0)[0]]
    assert "breaker_trip" in kinds and "accel_lost" in kinds


def test_hot_accelerators_throttle_and_lose_power(small_site):
    base, hit = twins(small_site)
    hit.inject("fan_failure", "R1-01-S01")
    base.run(40)
    hit.run(40)
    idx = np.flatnonzero(hit.inventory.accel_tags["device"] == "R1-01-S01")
    for sim in (base, hit):
        sim.load_offset = 0.5  # full load on every server for the comparison
    base.run(20)
    hit.run(20)
    assert hit.thermal[idx].all()
    assert (hit.power[idx] < base.power[idx]).all()
    assert (hit.accel_values()["accel_sm_clock_mhz"][idx] < base.accel_values()["accel_sm_clock_mhz"][idx]).all()


def test_power_cap_holds(small_site):
    sim = Simulator(small_site, seed=5, start_ns=START)
    sim.load_offset = 0.5
    sim.power_limit[:] = 300.0
    sim.run(10)
    assert sim.power.max() <= 300.0
    nv = sim.a_nvidia & (sim.a_tdp == 700)
    assert sim.power_capped[nv].all()


def test_load_follows_the_day(small_site):
    sim = Simulator(small_site, seed=1, start_ns=START)
    hours = {h: sim.diurnal(START - START % (86400 * 10**9) + h * 3600 * 10**9) for h in range(24)}
    assert max(hours, key=hours.get) == 15 and min(hours, key=hours.get) == 3


def test_neighbours_and_load_drive_inlet(small_site):
    """More heat in a zone raises its inlet temperature (the loop is closed)."""
    base, hot = twins(small_site)
    hot.load_offset = 0.4
    base.load_offset = -0.4
    base.run(60)
    hot.run(60)
    assert hot.r_power.sum() > base.r_power.sum() * 1.5
    assert (hot.temp.mean() - base.temp.mean()) > 5
