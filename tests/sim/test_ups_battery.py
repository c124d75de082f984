"""UPS batteries: higher load drains faster (Peukert), the reported runtime is the runtime the
battery really has, and a UPS that drops its load (or runs empty) de-energises its PDUs."""

from __future__ import annotations

import numpy as np
import pytest

from dcops.sim import Simulator
from dcops.sim.model import ups_runtime_s
from dcops.site import site_from_text

START = 1_750_000_000 * 10**9
RATED_S = 600.0  # at half load


def one_ups_site(capacity_kw: float) -> str:
    return f"""
site: ups-test
halls:
  - name: H1
    upses: [{{name: UPS-1, capacity_kw: {capacity_kw}, battery_runtime_s: {RATED_S}}}]
    pdus: [{{name: PDU-1, ups: UPS-1, capacity_kw: 100}}]
    rows:
      - name: R1
        racks:
          - name: R1-01
            feeds: {{A: PDU-1}}
            servers:
              - {{name: S1, psus: [A], idle_w: 800, accelerators: {{vendor: nvidia, model: H100-SXM5-80GB, count: 8, tdp_w: 700}}}}
              - {{name: S2, psus: [A], idle_w: 800, accelerators: {{vendor: nvidia, model: H100-SXM5-80GB, count: 8, tdp_w: 700}}}}
"""


def ups_row(sim, metric):
    ups = next(b for b in sim.batches() if b.measurement == "ups")
    return float(ups.fields[metric][0])


def drain_at(load_frac: float) -> tuple[float, float, float]:
    """(mean load on battery, reported runtime at the start of the outage, seconds until the load dropped)."""
    probe = Simulator(site_from_text(one_ups_site(1000.0)), seed=2, start_ns=START)
    probe.run(3)
    watts = float(probe.u_power[0])
    sim = Simulator(site_from_text(one_ups_site(watts / load_frac / 1000.0)), seed=2, start_ns=START)
    sim.run(3)
    sim.inject("ups_on_battery", "UPS-1", duration_s=None)
    sim.step()
    reported = ups_row(sim, "ups_battery_runtime_s")
    t0 = sim.now_ns
    loads = []
    for _ in range(2000):
        loads.append(float(sim.u_power[0] / sim.u_cap[0]))
        sim.step()
        if not sim.s_up.any():
            break
    return float(np.mean(loads)), reported, (sim.now_ns - t0) / 1e9


@pytest.mark.parametrize("target_load", [0.25, 0.5, 1.0])
def test_reported_runtime_agrees_with_the_drain(target_load):
    load, reported, lasted = drain_at(target_load)
    assert load == pytest.approx(target_load, rel=0.1)
    expected = RATED_S * (0.5 / load) ** 1.2
    assert lasted == pytest.approx(expected, rel=0.05)
    # UPS-MIB reports whole minutes, and the load wanders a little while on battery
    assert abs(reported - lasted) <= max(70.0, 0.1 * lasted), (reported, lasted)


def test_higher_load_drains_faster_than_proportionally():
    quarter, half, full = (drain_at(x)[2] for x in (0.25, 0.5, 1.0))
    assert quarter > half > full
    assert half / full > 2.0 and quarter / half > 2.0  # Peukert: worse than 1/load
    assert ups_runtime_s(RATED_S, 0.5) == pytest.approx(RATED_S)


def test_an_empty_battery_drops_the_load_and_its_pdus():
    sim = Simulator(site_from_text(one_ups_site(40.0)), seed=2, start_ns=START)
    sim.inject("ups_on_battery", "UPS-1", duration_s=None)
    sim.run(200)
    assert not sim.s_up.any()
    pdu = next(b for b in sim.batches() if b.measurement == "pdu")
    assert pdu.fields["pdu_voltage_v"][0] == 0 and pdu.fields["pdu_current_a"][0] == 0
    assert pdu.fields["pdu_breaker_closed"][0] == 1  # a dead bus: the breaker never opened
    assert ups_row(sim, "ups_output_voltage_v") == 0 and ups_row(sim, "ups_battery_runtime_s") == 0


def test_ups_output_lost_and_restored():
    sim = Simulator(site_from_text(one_ups_site(40.0)), seed=2, start_ns=START)
    sim.run(2)
    label = sim.inject("ups_output_lost", "UPS-1", duration_s=60)
    assert label.affected == ("UPS-1", "PDU-1", "R1-01")
    sim.step()
    assert not sim.s_up.any() and ups_row(sim, "ups_input_voltage_v") > 200  # utility is fine
    assert ups_row(sim, "ups_battery_charge_pct") == 100  # the battery is not what failed
    sim.run(7)
    assert sim.s_up.all()
    pdu = next(b for b in sim.batches() if b.measurement == "pdu")
    assert pdu.fields["pdu_voltage_v"][0] > 220 and pdu.fields["pdu_current_a"][0] > 0


def test_a_tripped_breaker_is_not_a_dead_bus():
    sim = Simulator(site_from_text(one_ups_site(40.0)), seed=2, start_ns=START)
    sim.inject("pdu_breaker_trip", "PDU-1")
    sim.step()
    pdu = next(b for b in sim.batches() if b.measurement == "pdu")
    assert pdu.fields["pdu_breaker_closed"][0] == 0 and pdu.fields["pdu_current_a"][0] == 0
    assert pdu.fields["pdu_voltage_v"][0] > 220  # input metered on the line side: still live
    assert np.isfinite(pdu.fields["pdu_power_w"][0])
