"""`dcops eval outages` on the small site: the production pipeline over a short scenario library.

One incident per independent fault, rooted at the faulted component, with the severity the
site's redundancy implies; the same seed gives the same report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dcops.commands.eval import library_path
from dcops.evaluation import EvalOptions, evaluate, load_scenarios, parse_scenarios
from dcops.evaluation.judge import score
from dcops.yamlconf import ConfigError

OPTS = EvalOptions(seed=3, warmup_s=300.0)
SHORT = ("pdu-one-leg", "pdu-both-legs", "crac-two-units", "single-fed-rack-and-gpu")


@pytest.fixture(scope="module")
def run(request):
    from tests.conftest import SMALL_SITE
    from dcops.site import load_site
    from dcops.topology import build_inventory

    site = load_site(SMALL_SITE)
    inv = build_inventory(site)
    spec = load_scenarios(library_path("quick"), inv)
    lines: list[str] = []
    report = evaluate(site, spec, OPTS, progress=lines.append, only=set(SHORT))
    return site, inv, spec, report, lines


def test_one_incident_per_independent_fault_with_the_right_root_and_severity(run):
    _, inv, _, report, lines = run
    assert [s["name"] for s in report["scenarios"]] == list(SHORT)
    assert len(lines) == len(SHORT) and all("raw alarms ->" in line for line in lines)
    s = score(report, inv)
    by = {p["name"]: p for p in s["per_scenario"]}
    for p in s["per_scenario"]:
        assert p["spurious"] == 0, p
        for c in p["causes"]:
            assert c["incidents"] == 1, (p["name"], c)
            assert set(c["roots"]) <= set(c["targets"]), (p["name"], c)
    sev = {p["name"]: [(c["expected_severity"], c["severities"]) for c in p["causes"]] for p in s["per_scenario"]}
    assert sev["pdu-one-leg"] == [("major", ["major"])]          # one leg of an A/B feed
    assert sev["pdu-both-legs"] == [("critical", ["critical"])]  # both: the row is dark
    assert sev["crac-two-units"] == [("critical", ["critical"])]  # N+1 zone, two units down
    assert sev["single-fed-rack-and-gpu"][0] == ("critical", ["critical"])  # R1-03 has one feed
    assert len(by["single-fed-rack-and-gpu"]["causes"]) == 2      # two independent faults, two incidents
    assert s["right_root_pct"] == 100.0 and s["raw_per_incident"] > 5
    # symptoms are folded under the root: far fewer incidents than raw alarms
    both = next(x for x in report["scenarios"] if x["name"] == "pdu-both-legs")
    (inc,) = both["incidents"]
    assert inc["alarms"] >= 10 and inc["notifications"] == both["pages"] == 1
    assert inc["runbook"] == "pdu-breaker-trip" and inc["root_kind"] == "pdu"
    assert 0 <= inc["opened_s"] < 120
    (fault_a, fault_b) = both["faults"]
    assert fault_a["first_rule_s"] is not None and 0 <= fault_a["first_rule_s"] - fault_a["at_s"] < 60


def test_same_seed_same_report(run):
    site, _, spec, report, _ = run
    again = evaluate(site, spec, OPTS, only={"pdu-both-legs"})
    first = next(x for x in report["scenarios"] if x["name"] == "pdu-both-legs")
    assert json.dumps(again["scenarios"][0], sort_keys=True) == json.dumps(first, sort_keys=True)


def test_fault_targets_are_checked_against_the_site(small_inventory):
    text = """
scenarios:
  - name: bad-target
    duration_s: 600
    faults:
      - {at_s: 60, fault: pdu_breaker_trip, target: PDU-NOPE}
  - name: wrong-kind
    duration_s: 600
    faults:
      - {at_s: 60, fault: crac_failure, target: PDU-A1}
      - {at_s: 30, fault: gpu_xid79, target: "R2-02-S01:0"}
"""
    with pytest.raises(ConfigError) as exc:
        parse_scenarios(text, "scen.yaml", small_inventory)
    msgs = [str(p) for p in exc.value.problems]
    assert len(msgs) == 3
    assert any("scen.yaml:6" in m and "scenario 'bad-target'" in m and "PDU-NOPE" in m and "no component" in m
               for m in msgs)
    assert any("'wrong-kind'" in m and "crac_failure on 'PDU-A1'" in m and "is a pdu" in m for m in msgs)
    assert any("gpu_xid79" in m and "nvidia" in m and "rebellions" in m for m in msgs)  # R2-02 holds NPUs


def test_scenario_file_shape_errors_name_the_line():
    with pytest.raises(ConfigError) as exc:
        parse_scenarios("scenarios:\n  - name: x\n    duration_s: -5\n    fautls: []\n", "s.yaml")
    text = "\n".join(str(p) for p in exc.value.problems)
    assert "s.yaml:3" in text and "duration_s" in text and "s.yaml:4" in text and "unknown field" in text


def test_shipped_libraries_fit_the_demo_site():
    from tests.conftest import DEMO_SITE
    from dcops.site import load_site
    from dcops.sim.faults import FAULT_TYPES
    from dcops.topology import build_inventory

    inv = build_inventory(load_site(DEMO_SITE))
    spec = load_scenarios(library_path("library"), inv)
    new = load_scenarios(library_path("new-faults"), inv)  # validated against the site too
    faults = {(f.fault, inv.resolve(f.target).kind) for s in spec.scenarios + new.scenarios for f in s.faults}
    # every fault type on every target kind it applies to (accelerator faults on their vendor's parts);
    # the newest fault types are covered by one target kind each in new-faults.yaml
    newest = {"ups_output_lost", "cdu_pump_failure", "coolant_leak", "tor_network_loss", "collector_down"}
    for name, ft in FAULT_TYPES.items():
        kinds = [k for k in ft.target_kinds if any(c.kind == k for c in inv.components.values())]
        if name in newest:
            assert any((name, k) in faults for k in kinds), name
            continue
        for k in kinds:
            assert (name, k) in faults, (name, k)
    assert any(not s.faults and s.duration_s >= 86400 for s in spec.scenarios)  # a quiet day
    # the new fault types' file names only the fault types of issue 13's Build 4
    from dcops.yamlconf import parse_yaml
    data, _ = parse_yaml(library_path("new-faults").read_text())
    assert {f["fault"] for s in data["scenarios"] for f in s["faults"]} == {
        "ups_output_lost", "cdu_pump_failure", "coolant_leak", "tor_network_loss", "collector_down"}


def test_cli_writes_the_report(tmp_path, capsys):
    from dcops.cli import main
    from tests.conftest import SMALL_SITE

    scen = tmp_path / "s.yaml"
    scen.write_text("scenarios:\n  - name: xid\n    duration_s: 120\n    faults:\n"
                    "      - {at_s: 20, fault: gpu_xid79, target: 'R2-01-S01:1'}\n")
    assert main(["eval", "outages", "--site", str(SMALL_SITE), "--scenarios", str(scen), "--out", str(tmp_path / "o"),
                 "--warmup-s", "100"]) == 0
    rep = json.loads((tmp_path / "o" / "report.json").read_text())
    (sc,) = rep["scenarios"]
    assert {"name", "raw_alarms", "alarms", "notifications", "incidents"} <= set(sc)
    for inc in sc["incidents"]:
        assert {"id", "root_component", "root_probable_cause", "severity", "opened_s", "alarms", "notifications",
                "runbook"} <= set(inc)
    assert [i["root_component"] for i in sc["incidents"]] == ["R2-01-S01:1"]
    err = capsys.readouterr().err
    assert "[1/1] xid:" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text("scenarios:\n  - name: y\n    duration_s: 60\n    faults:\n      - {at_s: 5, fault: ups_on_battery, target: UPS-Z}\n")
    assert main(["eval", "outages", "--site", str(SMALL_SITE), "--scenarios", str(bad), "--out", str(tmp_path / "p")]) == 2
    assert "scenario 'y', fault ups_on_battery on 'UPS-Z'" in capsys.readouterr().err


@pytest.mark.slow
def test_a_clogging_filter_on_another_site_pages_once_before_its_threshold(small_inventory):
    """The slow-drift target on a site it was not developed on: the small site's zones hold two
    CRACs each (no zone-mates to compare with: each unit is judged against its own baseline),
    whole-pascal pressure drops from filters of different ages, and the production pipeline."""
    from tests.conftest import SMALL_SITE
    from dcops.site import load_site

    spec = parse_scenarios("""
scenarios:
  - name: clogging
    duration_s: 2400
    faults:
      - {at_s: 60, fault: clogged_filter, target: CRAC-3, duration_s: 3500}
""", "drift.yaml", small_inventory)
    report = evaluate(load_site(SMALL_SITE), spec, OPTS)
    (scen,) = report["scenarios"]
    (fault,) = scen["faults"]
    assert fault["until_s"] == 60 + 3500  # when the fault ends (here after the scenario: the judge needs it)
    assert fault["first_analytics_s"] is not None
    assert fault["first_rule_s"] is None or fault["first_analytics_s"] < fault["first_rule_s"]
    assert fault["first_analytics_s"] - fault["at_s"] < 1200  # the filter's pressure drop is up ~25 % by then
    (inc,) = scen["incidents"]
    assert inc["root_component"] == "CRAC-3" and inc["runbook"] == "clogged-filter"
    assert inc["root_probable_cause"] == "pressureUnacceptable" and scen["pages"] == 1


def test_the_eval_retries_dead_bmcs_on_simulated_time():
    # the BMC poller's backoff ran on the wall clock, so when a dead BMC was tried again (and so
    # when a ToR loss's incident resolved) depended on how fast the machine was: a report
    # differed between a loaded and an idle run of the same scenario and seed
    from dcops.evaluation.runner import NS, OutageRun
    from dcops.site import load_site
    from tests.conftest import SMALL_SITE

    run = OutageRun(load_site(SMALL_SITE), EvalOptions(seed=1, warmup_s=0.0))
    try:
        t0 = run.bmcs.monotonic()
        run.run_for(60.0)
        assert run.bmcs.monotonic() - t0 == pytest.approx(60.0)
        assert run.bmcs.monotonic() == pytest.approx(run.sim.now_ns / NS)
    finally:
        run.close()


def test_the_library_covers_every_fault_type_on_every_target_kind_the_demo_has():
    from dcops.sim.faults import FAULT_TYPES
    from dcops.site import load_site
    from dcops.topology import build_inventory
    from tests.conftest import DEMO_SITE

    inv = build_inventory(load_site(DEMO_SITE))
    spec = load_scenarios(library_path("library"), inv)
    covered: dict[str, set[str]] = {}
    for sc in spec.scenarios:
        for f in sc.faults:
            covered.setdefault(f.fault, set()).add(inv.get(f.target).kind)
    kinds = {c.kind for c in inv.components.values()}
    missing = {name: sorted(kinds & set(ft.target_kinds) - covered.get(name, set())) for name, ft in FAULT_TYPES.items()}
    assert {k: v for k, v in missing.items() if v} == {}
    assert any(not sc.faults and sc.duration_s >= 86400 for sc in spec.scenarios)  # a fault-free day


@pytest.mark.parametrize("name", ["harbour", "ridge"])
def test_the_hand_written_sites_and_their_scenarios_load(name):
    """The two sites written by hand as unseen input (issue 13, `examples/sites/`): they build,
    their scenarios name their components, and every fault type they inject exists."""
    from dcops.site import load_site
    from dcops.topology import build_inventory

    root = Path(__file__).resolve().parents[2] / "examples" / "sites"
    inv = build_inventory(load_site(root / f"{name}-site.yaml"))
    spec = load_scenarios(root / f"{name}-scenarios.yaml", inv)
    assert len(spec.scenarios) >= 10 and all(s.faults or s.duration_s > 0 for s in spec.scenarios)
    assert len(inv.accel_ids) and inv.of_kind("ups") and inv.of_kind("cooling")


def test_a_run_can_start_at_any_hour_of_the_simulated_day():
    """The simulated load follows the time of day; the library ran at 08:00 only, and a busy
    hour found a fault (accelerators too hot and throttling explained each other)."""
    from dcops.evaluation.runner import T0_NS

    day = 86_400 * 10**9
    assert EvalOptions().t0_ns() == T0_NS
    assert EvalOptions(start_hour=15).t0_ns() % day == 15 * 3600 * 10**9
    assert abs(EvalOptions(start_hour=15).t0_ns() - T0_NS) < day
    with pytest.raises(ValueError, match="start_hour"):
        EvalOptions(start_hour=24)
