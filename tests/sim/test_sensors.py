"""Readings carry what real sensors carry: the collectors' resolution, per-unit bias, filter
ageing and noise, all from the seed, and never feeding back into the physics."""

from __future__ import annotations

import numpy as np
import pytest

from dcops.sim import Simulator
from dcops.sim.sensors import RESOLUTION

START = 1_750_000_000 * 10**9


def by_measurement(sim):
    return {b.measurement: b for b in sim.batches()}


def on_grid(values, step):
    v = values[np.isfinite(values)] / step
    return np.allclose(v, np.round(v), atol=1e-6)


def test_readings_come_at_the_collectors_resolution(small_site):
    sim = Simulator(small_site, seed=4, start_ns=START)
    sim.run(5)
    b = by_measurement(sim)
    assert on_grid(b["accel"].fields["accel_temp_degc"], 1.0)  # NVML / rbln-stat whole degC
    assert on_grid(b["server"].fields["server_inlet_temp_degc"], 1.0)  # BMC
    assert on_grid(b["rack"].fields["rack_inlet_temp_degc"], 0.1)  # SNMP probe tenths
    assert not on_grid(b["rack"].fields["rack_inlet_temp_degc"], 1.0)
    assert on_grid(b["pdu"].fields["pdu_current_a"], 0.1)
    assert on_grid(b["ups"].fields["ups_battery_runtime_s"], 60.0)  # UPS-MIB minutes
    assert on_grid(b["cooling"].fields["cooling_filter_dp_pa"], 1.0)
    for batch in b.values():
        for name, col in batch.fields.items():
            if name in RESOLUTION:
                assert on_grid(col, RESOLUTION[name]), name


def test_reading_twice_in_a_step_gives_the_same_and_does_not_change_the_physics(small_site):
    quiet = Simulator(small_site, seed=4, start_ns=START)
    watched = Simulator(small_site, seed=4, start_ns=START)
    for _ in range(20):
        quiet.step()
        watched.step()
        first, second = watched.batches(), watched.batches()
        for x, y in zip(first, second):
            for k in x.fields:
                np.testing.assert_array_equal(x.fields[k], y.fields[k])
    np.testing.assert_array_equal(quiet.temp, watched.temp)
    np.testing.assert_array_equal(quiet.r_inlet, watched.r_inlet)


def test_each_probe_has_its_own_fixed_offset(small_site):
    sim = Simulator(small_site, seed=4, start_ns=START)
    err = []
    for _ in range(60):
        sim.step()
        rack = by_measurement(sim)["rack"]
        err.append(rack.fields["rack_inlet_temp_degc"] - sim.r_inlet)
    err = np.array(err)
    offsets = err.mean(axis=0)
    # averaged over 60 readings noise and rounding shrink to ~0.02 degC; the offsets persist
    assert offsets.std() > 0.1
    assert np.abs(err - offsets).mean() < 0.25
    twin = Simulator(small_site, seed=4, start_ns=START)
    np.testing.assert_array_equal(twin.sensors.rack_inlet, sim.sensors.rack_inlet)
    other = Simulator(small_site, seed=5, start_ns=START)
    assert not np.allclose(other.sensors.rack_inlet, sim.sensors.rack_inlet)


def test_filters_of_different_ages_drop_different_pressures_with_noise(small_site):
    sim = Simulator(small_site, seed=4, start_ns=START)
    crac = ~sim.c_cdu
    series = []
    for _ in range(30):
        sim.step()
        series.append(by_measurement(sim)["cooling"].fields["cooling_filter_dp_pa"][crac])
    series = np.array(series)
    means = series.mean(axis=0)
    assert np.ptp(means) > 10  # unit to unit: ages differ
    assert (series.std(axis=0) > 0.5).all()  # noisy, not a constant
    assert ((means > 80) & (means < 170)).all()  # clean-ish filters, below the 250 Pa alarm


def test_a_changed_filter_is_new(small_site):
    sim = Simulator(small_site, seed=4, start_ns=START)
    c = sim._ci["CRAC-1"]
    before = sim.sensors.filter_dp_clean()[c]
    label = sim.inject("clogged_filter", "CRAC-1", duration_s=None)
    sim.run(30)
    assert sim.c_filter[c] < 0.6
    sim.clear(label.fault_id)
    assert sim.c_filter[c] == 1.0
    assert sim.sensors.filter_dp_clean()[c] == pytest.approx(90.0)
    assert before > 90.0


def test_agents_read_the_same_biased_sensor_the_batches_report(small_site):
    sim = Simulator(small_site, seed=4, start_ns=START)
    sim.run(3)
    readings = sim.accel_values()["accel_temp_degc"]
    accel = by_measurement(sim)["accel"]
    np.testing.assert_array_equal(np.round(readings), accel.fields["accel_temp_degc"])
    assert not np.allclose(readings, sim.temp)  # bias and noise on top of the die temperature
