"""Scenario evaluation: the judging rules, and a short run over a few fault types."""

from __future__ import annotations

import json

import pytest

from dcops.analytics.scenarios import ttd_target, ScenarioConfig, _judge, evaluate_scenarios, explained_by
from dcops.findings import Finding
from dcops.sim import FaultLabel

NS = 10**9


def _f(t_s, comp, det="univariate"):
    return Finding(int(t_s * NS), comp, {}, det, 0.9)


def test_judging_counts_episodes_recall_and_time_to_detect(small_inventory):
    label = FaultLabel("F1", "fan_failure", "R1-01-S01", 100 * NS, 200 * NS, ("R1-01-S01", "R1-01-S01:0"))
    findings = [_f(120, "R1-01-S01"), _f(130, "R1-01-S01"),  # one episode, detected after 2 intervals
                _f(140, "R1-01-S01:1", "thermal_residual"),  # inside the server: explained
                _f(500, "R1-01-S01"),  # after end + grace: unexplained
                _f(150, "R2-03-S02:0")]  # elsewhere: unexplained
    r = _judge(small_inventory, findings, [label], 10.0, grace_s=60)
    assert r["recall"] == 1.0 and r["median_ttd_intervals"] == 2.0
    assert r["episodes"] == 4 and r["explained_episodes"] == 2 and r["precision"] == 0.5
    exact, containing = explained_by(small_inventory, label)
    assert "R1-01" in exact and "R1-01" not in containing  # the rack itself, not its other servers
    assert "R1-01-S01:1" in containing


def test_short_scenario_run_meets_the_targets(small_site):
    cfg = ScenarioConfig(seed=1, repeats=2, train_intervals=120, gap_intervals=15, recovery_intervals=30, quiet_intervals=60,
                         durations_s={"crac_failure": 300.0, "gpu_xid79": 200.0, "psu_failure": 200.0})
    report = evaluate_scenarios(config=cfg, fault_types=["crac_failure", "gpu_xid79", "psu_failure"])
    for ft, r in report["fault_types"].items():
        assert r["recall"] >= 0.95, (ft, r)
        assert r["precision"] >= 0.9, (ft, r)
        assert r["median_ttd_intervals"] <= ttd_target(ft), (ft, r)
    assert report["targets_met"]
    assert report["quiet"]["false_episodes"] <= 1


@pytest.mark.xfail(strict=False, reason="open (issue 13.6): with sensors quantised as real collectors deliver them "
                   "(whole degrees for accelerators), the quantisation-aware stuck logic needs runs longer than a "
                   "short scenario gives for whole-degree sensors; a peer cross-check (peers moved, this one did not) "
                   "would find them sooner")
def test_stuck_sensor_found_in_a_short_scenario_run(small_site):
    cfg = ScenarioConfig(seed=1, repeats=2, train_intervals=120, gap_intervals=15, recovery_intervals=30, quiet_intervals=60,
                         durations_s={"stuck_sensor": 300.0})
    r = evaluate_scenarios(config=cfg, fault_types=["stuck_sensor"])["fault_types"]["stuck_sensor"]
    assert r["recall"] >= 0.95 and r["median_ttd_intervals"] <= ttd_target("stuck_sensor"), r


def test_eval_scenarios_cli_writes_json(tmp_path, capsys):
    from dcops.cli import main

    out = tmp_path / "r.json"
    assert main(["eval", "scenarios", "--types", "ups_on_battery", "--repeats", "1", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "ups_on_battery" in text and "targets met" in text
    data = json.loads(out.read_text())
    assert data["fault_types"]["ups_on_battery"]["recall"] == 1.0
    assert main(["eval", "scenarios", "--types", "nope"]) == 2
