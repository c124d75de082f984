"""The agents against the simulator: NVML stand-in per GPU server, rbln-stat stand-in per NPU server."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from dcops.collectors.npu_agent import load_npu_adapters, parse_document
from dcops.collectors.sim_agents import SimAgents, SimView, rbln_document, run_sim_agents
from dcops.bus import InProcessBus
from dcops.codec import decode
from dcops.sim import Simulator


@pytest.fixture()
def sim(small_site):
    s = Simulator(small_site, seed=3, start_ns=1_700_000_000_000_000_000)
    s.step()
    return s


def _by_device(out):
    return {str(b.tags["device"][0]): (b, ev) for _, b, ev in out}


def test_every_accelerator_reported_with_inventory_tags(sim):
    agents = SimAgents(sim)
    out = agents.poll()
    rows = sum(len(b) for _, b, _ in out)
    assert rows == sim.inventory.n_accel == 44
    truth = sim.accel_values()
    inv = sim.inventory
    for rack, b, ev in out:
        assert ev == [] and set(b.tags["rack"]) == {rack} and (b.time_ns == sim.now_ns).all()
        for r in range(len(b)):
            k = inv.accel_index[f"{b.tags['device'][r]}:{b.tags['accel'][r]}"]
            assert b.fields["accel_up"][r] == 1.0
            # NVML reports whole degrees; rbln-stat too.
            assert abs(b.fields["accel_temp_degc"][r] - truth["accel_temp_degc"][k]) <= 0.5
    gpu, _ = _by_device(out)["R1-01-S01"]
    assert gpu.fields["accel_power_w"][0] == pytest.approx(truth["accel_power_w"][inv.accel_index["R1-01-S01:0"]], abs=1e-3)
    assert set(gpu.tags["model"]) == {"H100-SXM5-80GB"} and gpu.tags["uuid"][0].startswith("GPU-")


def test_npu_card_power_matches_the_simulator(sim):
    agents = SimAgents(sim)
    npu, _ = _by_device(agents.poll())["R2-02-S01"]
    inv = sim.inventory
    ks = [inv.accel_index[f"R2-02-S01:{i}"] for i in range(4)]
    truth = sim.accel_values()["accel_power_w"][ks]
    assert np.nansum(npu.fields["accel_power_w"]) == pytest.approx(truth.sum(), abs=1e-4)
    assert set(npu.tags["vendor"]) == {"rebellions"}


def test_rbln_stand_in_writes_what_the_parser_reads(sim):
    view = SimView(sim)
    view.refresh()
    inv = sim.inventory
    ks = [inv.accel_index[f"R2-03-S02:{i}"] for i in range(4)]
    doc = rbln_document(view, "R2-03-S02", ks)
    d0 = doc["devices"][0]
    assert d0["temperature"].endswith("C") and d0["card_power"].endswith("uW") and d0["pstate"].startswith("P")
    parsed = parse_document(__import__("json").dumps(doc), load_npu_adapters()["rbln-stat"])
    assert parsed.problems == () and len(parsed.devices) == 4


def test_xid79_gives_xid_and_lost_then_recovered(sim):
    agents = SimAgents(sim)
    agents.poll()
    label = sim.inject("gpu_xid79", "R1-02-S02:3", duration_s=None)
    sim.step()
    b, ev = _by_device(agents.poll())["R1-02-S02"]
    kinds = [(e.kind, e.attributes.get("xid")) for e in ev]
    assert kinds == [("xid", 79), ("accel_lost", None)]
    assert ev[0].attributes["action"] == "reboot_node" and ev[0].target["accel"] == "3"
    assert ev[0].attributes["uuid"] == b.tags["uuid"][3]
    assert b.fields["accel_up"][3] == 0.0 and np.isnan(b.fields["accel_temp_degc"][3])
    assert np.isnan(b.fields["accel_xid_total"][3])  # a lost GPU's row carries accel_up = 0 only
    sim.clear(label.fault_id)
    sim.step()
    b, ev = _by_device(agents.poll())["R1-02-S02"]
    assert [e.kind for e in ev] == ["accel_recovered"] and b.fields["accel_xid_total"][3] == 1.0


def test_ecc_dbe_counts_and_xids(sim):
    agents = SimAgents(sim)
    agents.poll()
    sim.inject("gpu_ecc_dbe", "R2-01-S01:0")
    sim.step()
    b, ev = _by_device(agents.poll())["R2-01-S01"]
    assert [e.attributes["xid"] for e in ev] == [48, 63]
    assert b.fields["accel_ecc_uncorrected_total"][0] >= 1 and b.fields["accel_remapped_rows_pending"][0] == 1.0
    assert b.fields["accel_xid_total"][0] == 2.0


def test_dark_hosts_publish_nothing(sim):
    agents = SimAgents(sim)
    sim.inject("pdu_breaker_trip", "PDU-A1")
    sim.step()
    devices = set(_by_device(agents.poll()))
    assert "R1-03-S01" not in devices and "R1-01-S01" in devices


def test_run_sim_agents_publishes_to_the_bus(sim):
    bus = InProcessBus()
    samples, events = bus.consumer("samples", "t"), bus.consumer("events", "t")
    stop = threading.Event()
    lock = threading.Lock()
    th = threading.Thread(target=run_sim_agents, args=(sim, bus, stop, 0.01), kwargs={"lock": lock})
    th.start()
    got = []
    for _ in range(300):
        got += samples.poll(0.01, 1000)
        if len(got) >= 11:
            break
    with lock:
        sim.inject("gpu_xid79", "R1-01-S01:1")
        sim.step()
    evs = []
    for _ in range(300):
        evs += events.poll(0.01, 100)
        if evs:
            break
    stop.set()
    th.join(5)
    assert not th.is_alive()
    keys = {m.key for m in got}
    assert {"R1-01", "R2-02"} <= keys
    batch = decode(got[0].value)
    assert batch.measurement == "accel" and "uuid" in batch.tags
    decoded = [e for m in evs for e in decode(m.value)]
    assert {e.kind for e in decoded} == {"xid", "accel_lost"} and evs[0].key == "R1-01"


def test_agent_covers_accelerator_events_not_server_ones(sim):
    from dcops.collectors.sim_agents import agent_covers

    cursor = sim.events_since(0)[1]
    sim.inject("gpu_xid79", "R1-01-S01:0")
    sim.inject("pdu_breaker_trip", "PDU-A1")
    sim.step()
    events, _ = sim.events_since(cursor)
    covered = {(e.kind, e.target.get("device"), e.target.get("accel")) for e in events if agent_covers(e)}
    assert covered == {("xid", "R1-01-S01", "0"), ("accel_lost", "R1-01-S01", "0")}
    assert any(e.kind == "accel_lost" and not e.target.get("accel") for e in events)  # R1-03-S01 lost power
