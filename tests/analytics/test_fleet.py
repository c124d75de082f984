"""The fleet scorer on the simulated site: quiet when healthy, specific and explained on faults."""

from __future__ import annotations

import copy

import numpy as np

from dcops.analytics.fleet import FleetScorer


def _continue(sim_history, trained):
    sim, history = sim_history
    sim = copy.deepcopy(sim)
    scorer = FleetScorer(sim.inventory, trained)
    quiet = [f for batches in history for f in scorer.score(batches)]
    return sim, scorer, quiet


def test_healthy_fleet_is_quiet_and_faults_are_found_within_three_intervals(sim_history, trained):
    sim, scorer, warm = _continue(sim_history, trained)
    healthy = []
    for _ in range(40):
        sim.step()
        healthy += scorer.score(sim.batches())
    assert len(healthy) <= 1, [f.explanation for f in healthy]

    gpu = next(a for a in sim.inventory.accel_ids if sim.inventory.get(a).attrs["vendor"] == "nvidia")
    sim.inject("hbm_thermal_throttle", gpu, 600)
    found = []
    for k in range(3):
        sim.step()
        found += [f for f in scorer.score(sim.batches()) if f.component == gpu]
    assert found, "HBM overheating not found within 3 intervals"
    f = found[0]
    assert 0.5 <= f.score <= 1.0 and f.target["accel"] == gpu.rsplit(":", 1)[1] and f.target["device"] == gpu.split(":")[0]
    top = f.contributions[0]
    assert top.feature == "accel_mem_temp_degc" and top.observed > top.expected + 3
    assert "accel_mem_temp_degc" in f.explanation


def test_fan_failure_raises_thermal_residual_and_server_findings(sim_history, trained):
    sim, scorer, _ = _continue(sim_history, trained)
    server = sim.inventory.servers[0].name
    sim.inject("fan_failure", server, 900)
    seen = {}
    for k in range(12):
        sim.step()
        for f in scorer.score(sim.batches()):
            seen.setdefault(f.detector, set()).add(f.component)
    assert server in seen.get("univariate", set())  # its fan speed fell to zero
    hot = {c for c in seen.get("thermal_residual", set()) if c.startswith(server + ":")}
    assert hot, seen  # its accelerators run hotter than power and inlet explain
    assert all(c.startswith(server) for c in seen.get("thermal_residual", set()))


def test_counter_and_lost_accelerator_findings(sim_history, trained):
    sim, scorer, _ = _continue(sim_history, trained)
    gpus = [a for a in sim.inventory.accel_ids if sim.inventory.get(a).attrs["vendor"] == "nvidia"]
    sim.inject("gpu_ecc_dbe", gpus[1], 300)
    sim.inject("gpu_xid79", gpus[5], 300)
    sim.step()
    findings = scorer.score(sim.batches())
    by = {(f.component, f.detector) for f in findings}
    assert (gpus[1], "counter_trend") in by
    assert (gpus[5], "univariate") in by
    lost = next(f for f in findings if f.component == gpus[5] and f.detector == "univariate")
    assert lost.contributions[0].feature == "accel_up" and lost.contributions[0].observed == 0


def test_stuck_sensor_is_named_as_such(sim_history, trained):
    sim, scorer, _ = _continue(sim_history, trained)
    rack = sim.inventory.racks[0].name
    sim.inject("stuck_sensor", rack, 600)
    hits = []
    for _ in range(20):  # a run of repeats this sensor's noise and 0.1 degC steps make improbable
        sim.step()
        hits += [f for f in scorer.score(sim.batches()) if f.attributes.get("kind") == "stuck_sensor"]
    assert [(f.component, f.attributes["metric"]) for f in hits][:1] == [(rack, "rack_inlet_temp_degc")]


def test_untrained_scorer_still_runs_the_untrained_detectors(sim_history):
    sim, history = sim_history
    scorer = FleetScorer(sim.inventory, None)
    out = [f for b in history[:40] for f in scorer.score(b)]
    assert {f.detector for f in out} <= {"univariate", "peer_group", "counter_trend"}
    assert np.isfinite([f.score for f in out]).all()


def test_cooling_loss_shows_as_rack_inlet_residual_in_its_zone(sim_history, trained):
    sim, scorer, _ = _continue(sim_history, trained)
    assert set(trained.models["inlet_residual"].zones) == {"Z1", "Z2"}
    sim.inject("crac_failure", "CRAC-1", 1800)
    hot = []
    for _ in range(30):
        sim.step()
        hot += [f for f in scorer.score(sim.batches())
                if f.detector == "thermal_residual" and f.contributions[0].feature == "rack_inlet_temp_degc"]
    assert hot, "no rack inlet residual after losing a CRAC"
    racks_z1 = {r.name for r in sim.inventory.racks if r.row == "R1"}
    assert {f.component for f in hot} <= racks_z1
    c = hot[0].contributions[0]
    assert c.observed > c.expected + 1.0


def test_a_whole_host_moving_together_is_not_an_accelerator_anomaly(sim_history):
    """A job that starts on one server moves all its accelerators together against the rack's
    peers: that is the host's workload, not an anomaly of each accelerator. One accelerator
    running hot against its own host-mates still is."""
    sim, history = sim_history
    scorer = FleetScorer(sim.inventory, None)
    for b in history[:40]:
        scorer.score(b)
    server = sim.inventory.servers[0].name
    accels = sorted(c for c in sim.inventory.children(server) if sim.inventory.components[c].kind == "accel")
    rows = [list(sim.inventory.accel_ids).index(a) for a in accels]

    def shifted(batches, rows_hot, dt):
        out = []
        for b in batches:
            if b.measurement == "accel" and "accel_temp_degc" in b.fields:
                f = dict(b.fields)
                t = f["accel_temp_degc"].copy()
                ids = [f"{d}:{i}" for d, i in zip(b.tags["device"], b.tags["accel"])] if "accel" in b.tags else []
                for k, aid in enumerate(ids):
                    if list(sim.inventory.accel_ids).index(aid) in rows_hot:
                        t[k] += dt
                f["accel_temp_degc"] = t
                b = b.with_fields(**f)
            out.append(b)
        return out

    whole = [f for b in history[40:46] for f in scorer.score(shifted(b, set(rows), 12.0))]
    assert not [f for f in whole if f.detector == "peer_group" and f.component in accels]
    one = [f for b in history[46:52] for f in scorer.score(shifted(b, {rows[0]}, 12.0))]
    assert any(f.detector == "peer_group" and f.component == accels[0] for f in one)
