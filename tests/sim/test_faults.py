"""Every fault in the library: its label (start, end, affected) and its observable effect."""

from __future__ import annotations

import numpy as np
import pytest

from dcops.sim import FAULT_TYPES, Simulator

START = 1_750_000_000 * 10**9
NS = 10**9

TARGETS = {
    "crac_failure": "CRAC-3",
    "fan_failure": "R2-01-S02",
    "clogged_filter": "CRAC-1",
    "psu_failure": "R1-02-S01",
    "ups_on_battery": "UPS-B",
    "pdu_breaker_trip": "PDU-B2",
    "gpu_ecc_dbe": "R1-01-S01:2",
    "gpu_xid79": "R1-02-S02:0",
    "hbm_thermal_throttle": "R2-01-S01:1",
    "npu_thermal_throttle": "R2-02-S01:3",
    "stuck_sensor": "R1-01-S02:1",
    "ups_output_lost": "UPS-A",
    "cdu_pump_failure": "CRAC-4",
    "coolant_leak": "CRAC-4",
    "tor_network_loss": "R1-01",
    "collector_down": "PDU-A1",
}


def test_every_fault_type_is_covered():
    assert set(TARGETS) == set(FAULT_TYPES)


@pytest.mark.parametrize("fault_type", sorted(TARGETS))
def test_fault_label_and_effect(small_site, fault_type):
    base = Simulator(small_site, seed=7, start_ns=START)
    sim = Simulator(small_site, seed=7, start_ns=START)
    base.run(3)
    sim.run(3)
    t0 = sim.now_ns
    label = sim.inject(fault_type, TARGETS[fault_type])
    ft = FAULT_TYPES[fault_type]
    assert label.fault_type == fault_type and label.target == TARGETS[fault_type]
    assert label.start_ns == t0
    assert label.end_ns == t0 + int(ft.default_duration_s * NS)
    assert TARGETS[fault_type] in label.affected
    assert label.active_at(t0) and not label.active_at(label.end_ns)
    steps = min(60, int(ft.default_duration_s / 10) - 2) if fault_type != "clogged_filter" else int(ft.default_duration_s / 10 * 0.8)
    readings = []
    row = sim.inventory.accel_index.get(TARGETS[fault_type], 0)
    for _ in range(min(steps, 60)):
        base.step()
        sim.step()
        accel = next(b for b in sim.batches() if b.measurement == "accel")
        readings.append(accel.fields["accel_temp_degc"][row])
    if steps > 60:
        base.run(steps - 60)
        sim.run(steps - 60)
    EFFECTS[fault_type](base, sim, TARGETS[fault_type], readings)
    # ground truth is recorded as an event too
    assert any(e.kind == "fault_injected" and e.attributes["fault_id"] == label.fault_id for e in sim.events_since(0)[0])


def test_fault_ends_after_its_duration(small_site):
    sim = Simulator(small_site, seed=1, start_ns=START)
    label = sim.inject("pdu_breaker_trip", "PDU-A2", duration_s=60)
    sim.run(3)
    assert not sim.p_closed[sim._pi["PDU-A2"]]
    sim.run(4)
    assert sim.p_closed[sim._pi["PDU-A2"]]
    assert sim.active_faults() == []
    assert any(e.kind == "breaker_closed" for e in sim.events_since(0)[0])
    assert sim.labels == [label]


def test_clear_sets_the_end(small_site):
    sim = Simulator(small_site, seed=1, start_ns=START)
    label = sim.inject("gpu_xid79", "R1-01-S01:0", duration_s=None)
    assert label.end_ns is None
    sim.run(2)
    done = sim.clear(label.fault_id)
    assert done.end_ns == sim.now_ns and sim.labels == [done]


def test_bad_injections_are_refused_with_reasons(small_site):
    sim = Simulator(small_site, seed=1, start_ns=START)
    with pytest.raises(ValueError, match="unknown fault type"):
        sim.inject("meteor_strike", "CRAC-1")
    with pytest.raises(ValueError, match="targets"):
        sim.inject("crac_failure", "UPS-A")
    with pytest.raises(ValueError, match="rebellions"):
        sim.inject("npu_thermal_throttle", "R1-01-S01:0")
    with pytest.raises(KeyError, match="no component"):
        sim.inject("crac_failure", "CRAC-99")


# --- expected effects ------------------------------------------------------------------------

def _rack_mean(sim, row):
    return np.mean([sim.r_inlet[i] for i, r in enumerate(sim.rack_names) if sim.inventory.get(r).row == row])


def _crac(base, sim, target, _):
    assert _rack_mean(sim, "R2") - _rack_mean(base, "R2") > 2.0
    assert abs(_rack_mean(sim, "R1") - _rack_mean(base, "R1")) < 0.05
    cool = next(b for b in sim.batches() if b.measurement == "cooling")
    assert cool.fields["cooling_running"][list(cool.tags["device"]).index(target)] == 0


def _fan(base, sim, target, _):
    idx = sim.inventory.accel_tags["device"] == target
    assert (sim.temp[idx] - base.temp[idx]).min() > 10


def _filter(base, sim, target, _):
    c = sim._ci[target]
    assert sim.c_filter[c] < 0.65
    cool = next(b for b in sim.batches() if b.measurement == "cooling")
    assert cool.fields["cooling_filter_dp_pa"][c] > 250
    assert _rack_mean(sim, "R1") - _rack_mean(base, "R1") > 1.5


def _psu(base, sim, target, _):
    s = sim._si[target]
    assert sim.s_up[s] and sim.s_psu_w[s, 0] == 0 and sim.s_psu_w[s, 1] == pytest.approx(sim.s_power[s])
    srv = next(b for b in sim.batches() if b.measurement == "server")
    assert srv.fields["server_psu_ok"][s] == 1


def _ups(base, sim, target, _):
    ups = next(b for b in sim.batches() if b.measurement == "ups")
    i = list(ups.tags["device"]).index(target)
    assert ups.fields["ups_on_battery"][i] == 1 and ups.fields["ups_input_voltage_v"][i] == 0
    assert ups.fields["ups_battery_charge_pct"][i] < 100
    assert sim.s_up.all()  # 10 minutes in, the battery still carries the load


def _breaker(base, sim, target, _):
    for r in sim.inventory.racks_of_pdu[target]:
        assert sim.r_feed_w[sim._ri[r], 1] == 0


def _dbe(base, sim, target, _):
    i = sim.inventory.accel_index[target]
    v = sim.accel_values()
    assert v["accel_ecc_uncorrected_total"][i] >= 1 and v["accel_remapped_rows_pending"][i] == 1
    xids = [e.attributes["xid"] for e in sim.events_since(0)[0] if e.kind == "xid"]
    assert 48 in xids


def _xid79(base, sim, target, _):
    i = sim.inventory.accel_index[target]
    v = sim.accel_values()
    assert v["accel_up"][i] == 0 and np.isnan(v["accel_temp_degc"][i])
    assert any(e.kind == "xid" and e.attributes["xid"] == 79 for e in sim.events_since(0)[0])


def _hbm(base, sim, target, _):
    i = sim.inventory.accel_index[target]
    assert sim.mem_temp[i] > 90 and sim.mem_temp[i] - base.mem_temp[i] > 30 and sim.thermal[i]


def _npu(base, sim, target, _):
    i = sim.inventory.accel_index[target]
    assert sim.thermal[i] and sim.temp[i] > base.temp[i] + 10


def _stuck(base, sim, target, readings):
    assert len(set(readings)) == 1  # reported value frozen
    i = sim.inventory.accel_index[target]
    assert sim.temp[i] != readings[0]  # the true state keeps moving


def _batch(sim, measurement):
    return next((b for b in sim.batches() if b.measurement == measurement), None)


def _ups_output(base, sim, target, _):
    pdu = _batch(sim, "pdu")
    for i, name in enumerate(pdu.tags["device"]):
        dead = sim.inventory.get(name).attrs["ups"] == target
        assert (pdu.fields["pdu_voltage_v"][i] == 0) == dead
        if dead:  # a dead bus, not an open breaker
            assert pdu.fields["pdu_current_a"][i] == 0 and pdu.fields["pdu_breaker_closed"][i] == 1
    ups = _batch(sim, "ups")
    i = list(ups.tags["device"]).index(target)
    assert ups.fields["ups_output_voltage_v"][i] == 0 and ups.fields["ups_input_voltage_v"][i] > 200
    assert ups.fields["ups_on_battery"][i] == 0
    assert not sim.s_up[sim._si["R1-03-S01"]]  # fed from A only
    assert sim.s_up[[sim._si[s] for s in sim.server_names if not s.startswith("R1-03")]].all()
    assert (sim.r_feed_w[:, 0] == 0).all()
    assert any(e.kind == "ups_output_off" for e in sim.events_since(0)[0])


def _cdu_pump(base, sim, target, _):
    cool = _batch(sim, "cooling")
    i = list(cool.tags["device"]).index(target)
    assert cool.fields["cooling_flow_lpm"][i] == 0 and cool.fields["cooling_running"][i] == 1
    assert _rack_mean(sim, "R2") - _rack_mean(base, "R2") > 1.0  # its zone lost capacity
    assert abs(_rack_mean(sim, "R1") - _rack_mean(base, "R1")) < 0.05


def _leak(base, sim, target, _):
    cool, ref = _batch(sim, "cooling"), _batch(base, "cooling")
    i = list(cool.tags["device"]).index(target)
    assert cool.fields["cooling_leak"][i] == 1 and ref.fields["cooling_leak"][i] == 0
    assert cool.fields["cooling_coolant_level_pct"][i] < 70
    assert cool.fields["cooling_pressure_kpa"][i] < ref.fields["cooling_pressure_kpa"][i] - 5
    assert np.isnan(cool.fields["cooling_leak"][list(cool.tags["device"]).index("CRAC-1")])  # air units have none


def _tor(base, sim, target, _):
    rack_servers = [s for s in sim.server_names if sim.inventory.get(s).rack == target]
    assert all(sim.s_up[sim._si[s]] for s in rack_servers)  # still running
    for b in sim.batches():
        if "rack" in b.tags:
            assert target not in set(b.tags["rack"]), b.measurement
    ref = {b.measurement: len(b) for b in base.batches()}
    got = {b.measurement: len(b) for b in sim.batches()}
    assert got["accel"] == ref["accel"] - 8 and got["server"] == ref["server"] - 2 and got["rack"] == ref["rack"] - 1
    assert got["env"] == ref["env"] - 1 and got["pdu"] == ref["pdu"]


def _collector(base, sim, target, _):
    pdu = _batch(sim, "pdu")
    assert target not in set(pdu.tags["device"]) and len(pdu) == 3
    assert sim.p_power[sim._pi[target]] > 0  # the PDU itself carries on


EFFECTS = {
    "crac_failure": _crac, "fan_failure": _fan, "clogged_filter": _filter, "psu_failure": _psu,
    "ups_on_battery": _ups, "pdu_breaker_trip": _breaker, "gpu_ecc_dbe": _dbe, "gpu_xid79": _xid79,
    "hbm_thermal_throttle": _hbm, "npu_thermal_throttle": _npu, "stuck_sensor": _stuck,
    "ups_output_lost": _ups_output, "cdu_pump_failure": _cdu_pump, "coolant_leak": _leak,
    "tor_network_loss": _tor, "collector_down": _collector,
}
