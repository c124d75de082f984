"""The faults that round out the library on the demo site: liquid cooling (CDU pump, coolant
leak), a dead top-of-rack switch, a dead collector; and their target checks."""

from __future__ import annotations

import numpy as np
import pytest

from dcops.sim import FAULT_TYPES, Simulator
from dcops.site import load_site, site_from_text
from tests.conftest import DEMO_SITE, SMALL_SITE

START = 1_750_000_000 * 10**9


@pytest.fixture(scope="module")
def demo():
    return load_site(DEMO_SITE)


def twins(site, seed=6):
    a, b = Simulator(site, seed=seed, start_ns=START), Simulator(site, seed=seed, start_ns=START)
    a.run(3)
    b.run(3)
    return a, b


def values(sim) -> int:
    return sum(b.n_values for b in sim.batches())


def test_demo_site_has_a_liquid_cooled_row_on_two_cdus(demo):
    sim = Simulator(demo, seed=1, start_ns=START)
    inv = sim.inventory
    cdus = [c.name for c in inv.of_kind("cooling") if c.attrs["unit_kind"] == "cdu"]
    assert cdus == ["CDU-H3-1", "CDU-H3-2"]
    liquid = {sim.rack_names[i] for i in np.flatnonzero(sim.r_liquid)}
    assert liquid == {"H3-R1-01", "H3-R1-02", "H3-R1-03"}
    assert set(FAULT_TYPES["cdu_pump_failure"].targets(inv)) == set(cdus)
    assert "CRAC-H1-1" in FAULT_TYPES["crac_failure"].targets(inv)


def test_cdu_pump_failure_heats_the_accelerators_it_cools_only(demo):
    base, one = twins(demo)
    _, two = twins(demo)
    label = one.inject("cdu_pump_failure", "CDU-H3-1")
    assert set(label.affected) >= {"CDU-H3-1", "ZONE-H3-1", "H3-R1", "H3-R1-01", "H3-R1-03"}
    two.inject("cdu_pump_failure", "CDU-H3-1")
    two.inject("cdu_pump_failure", "CDU-H3-2")
    for _ in range(60):
        base.step(), one.step(), two.step()
    h3 = base.inventory.accel_tags["hall"] == "H3"
    # one of two (N+1): the other CDU carries the row, coolant a few degrees warmer
    assert 2.0 < (one.temp[h3] - base.temp[h3]).mean() < 10.0 and not one.thermal[h3].any()
    # both: no flow at all, the accelerators throttle
    assert two.thermal[h3].mean() > 0.5
    assert np.abs(one.temp[~h3] - base.temp[~h3]).max() < 0.01  # air-cooled halls do not notice
    cool = next(b for b in two.batches() if b.measurement == "cooling")
    dev = list(cool.tags["device"])
    assert cool.fields["cooling_flow_lpm"][dev.index("CDU-H3-1")] == 0
    assert cool.fields["cooling_supply_temp_degc"][dev.index("CDU-H3-2")] > 24  # the supply-hot rule's limit
    ref = next(b for b in base.batches() if b.measurement == "rack")
    rack = next(b for b in one.batches() if b.measurement == "rack")
    i = list(rack.tags["rack"]).index("H3-R1-01")
    assert abs(rack.fields["rack_inlet_temp_degc"][i] - ref.fields["rack_inlet_temp_degc"][i]) < 0.5  # the air is not the symptom


def test_coolant_leak_runs_the_loop_dry_then_the_pumps_cavitate(demo):
    base, sim = twins(demo)
    sim.inject("coolant_leak", "CDU-H3-2", duration_s=None, rate_pct_per_min=10.0)
    levels, flows = [], []
    for _ in range(60):
        base.step()
        sim.step()
        cool = next(b for b in sim.batches() if b.measurement == "cooling")
        k = list(cool.tags["device"]).index("CDU-H3-2")
        levels.append(cool.fields["cooling_coolant_level_pct"][k])
        flows.append(cool.fields["cooling_flow_lpm"][k])
        assert cool.fields["cooling_leak"][k] == 1
    assert levels[0] > 90 and levels[-1] == 0 and all(np.diff(levels) <= 0)
    assert flows[0] > 100 and flows[-1] == 0  # below 25 % the pumps trip
    h3 = base.inventory.accel_tags["hall"] == "H3"
    assert (sim.temp[h3] - base.temp[h3]).mean() > 1.5  # the other CDU carries the row, a little warmer


def test_cdu_faults_refuse_a_site_without_a_cdu():
    text = SMALL_SITE.read_text().replace("kind: cdu", "kind: crac")
    sim = Simulator(site_from_text(text), seed=1, start_ns=START)
    for fault in ("cdu_pump_failure", "coolant_leak"):
        with pytest.raises(ValueError, match=r"has no CDU"):
            sim.inject(fault, "CRAC-4")
        assert FAULT_TYPES[fault].targets(sim.inventory) == []
    demo = Simulator(load_site(DEMO_SITE), seed=1, start_ns=START)
    with pytest.raises(ValueError, match=r"CRAC-H1-1.*crac.*CDU-H3-1, CDU-H3-2"):
        demo.inject("cdu_pump_failure", "CRAC-H1-1")
    with pytest.raises(ValueError, match="no air filter"):
        demo.inject("clogged_filter", "CDU-H3-1")


def test_tor_network_loss_silences_the_rack_without_stopping_it(demo):
    base, sim = twins(demo)
    label = sim.inject("tor_network_loss", "H1-R2-04", duration_s=120)
    assert "H1-R2-04" in label.affected and "H1-R2-04-S03:7" in label.affected and "H1-R2-04-ENV" in label.affected
    sim.step(), base.step()
    lost = values(base) - values(sim)
    # 64 GPUs x 36 fields + 8 servers x 7 + the rack's 5 + its probe's 3
    assert lost == 64 * 36 + 8 * 7 + 5 + 3
    for b in sim.batches():
        if "rack" in b.tags:
            assert "H1-R2-04" not in set(b.tags["rack"])
    assert sim.s_up.all() and sim.r_power[sim._ri["H1-R2-04"]] > 0  # still serving
    sim.run(12)
    base.run(12)
    assert values(sim) == values(base)  # the switch is back: every sample again
    assert "H1-R2-04" in set(next(b for b in sim.batches() if b.measurement == "rack").tags["rack"])


def test_collector_down_on_a_server_stops_its_accelerators_only(demo):
    sim = Simulator(demo, seed=6, start_ns=START)
    sim.inject("collector_down", "H2-R1-02-S05", duration_s=None)
    sim.step()
    b = {x.measurement: x for x in sim.batches()}
    assert not any(str(d) == "H2-R1-02-S05" for d in b["accel"].tags["device"])
    assert "H2-R1-02-S05" in set(b["server"].tags["device"])  # the BMC still answers
    from dcops.collectors.sim_agents import SimAgents

    polled = {agent_rack_batch[1].tags["device"][0] for agent_rack_batch in SimAgents(sim).poll()}
    assert "H2-R1-02-S05" not in polled and "H2-R1-02-S04" in polled


def test_collector_down_on_a_facility_device(demo):
    sim = Simulator(demo, seed=6, start_ns=START)
    with pytest.raises(ValueError, match="targets"):
        sim.inject("collector_down", "H1")
    label = sim.inject("collector_down", "UPS-H2-A", duration_s=None)
    assert label.affected == ("UPS-H2-A",)
    sim.step()
    ups = next(b for b in sim.batches() if b.measurement == "ups")
    assert "UPS-H2-A" not in set(ups.tags["device"]) and len(ups) == 5
    sim.clear(label.fault_id)
    ups = next(b for b in sim.batches() if b.measurement == "ups")
    assert len(ups) == 6
