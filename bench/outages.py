"""Outage response end to end: the scenario library through the production pipeline.

Runs `dcops eval outages` in process (simulator -> accelerator agents, BMC poller and sim
collector -> analytics -> rules -> correlation -> grouping -> incidents -> notification
routing, on simulated time) over the shipped library on the demo site, with a second alerter
without correlation reading the same bus as the baseline, and prints per pipeline:

- raw alarms : incidents over the fault scenarios (target >= 50:1);
- % of incidents whose root is a component the scenario faulted (target >= 95 %);
- incidents per independent fault and how many faults got exactly one (target: all);
- severity right for redundancy (one A/B leg / one N+1 unit = major, both = critical);
- pages per simulated quiet day (target <= 1), extrapolated from the quiet time simulated;
- CPU seconds per simulated hour (warm-up included) and peak RSS;
- determinism: one scenario run again in a fresh interpreter with another hash seed gives
  the identical report entry.

    python bench/outages.py [--site examples/demo-site.yaml] [--scenarios FILE] [--seed 1]
                            [--warmup-s 300] [--max-quiet-s S] [--only NAME ...] [--quick]
                            [--out DIR] [--no-baseline]

`--quick`: the short library on the small test site (a smoke test, about a minute).
`--max-quiet-s` caps the fault-free scenarios (a simulated day of the demo site costs hours
of CPU on a small machine); pages per quiet day are then extrapolated and the JSON says from
how many simulated seconds. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import peak_rss_mb, report  # noqa: E402
from dcops.commands.eval import library_path  # noqa: E402
from dcops.evaluation import EvalOptions, evaluate, load_scenarios  # noqa: E402
from dcops.evaluation.judge import score  # noqa: E402
from dcops.site import load_site  # noqa: E402
from dcops.topology import build_inventory  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _figures(s: dict) -> dict:
    keys = ("raw_alarms", "incidents", "raw_per_incident", "right_root_pct", "independent_faults",
            "faults_with_one_incident", "faults_missed", "incidents_per_fault", "spurious_incidents",
            "redundancy_cases", "redundancy_severity_right", "gradual_faults",
            "gradual_flagged_before_threshold", "quiet_s", "quiet_pages", "pages_per_quiet_day")
    return {k: s[k] for k in keys}


def _determinism(site: Path, scenarios: Path, name: str, seed: int, warmup_s: float, expected: dict,
                 start_hour: float | None = None) -> bool:
    """The scenario again, in a fresh interpreter with another hash seed: the same entry."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PYTHONHASHSEED": "12345"}
        cmd = [sys.executable, "-m", "dcops.cli", "eval", "outages", "--site", str(site), "--scenarios", str(scenarios),
               "--out", tmp, "--seed", str(seed), "--warmup-s", str(warmup_s), "--only", name]
        if start_hour is not None:
            cmd += ["--start-hour", str(start_hour)]
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO)
        if p.returncode != 0:
            print(p.stderr, file=sys.stderr)
            return False
        again = json.loads((Path(tmp) / "report.json").read_text())["scenarios"][0]
    return again == {k: v for k, v in expected.items() if k != "baseline"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--site", type=Path)
    ap.add_argument("--scenarios", type=Path)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--warmup-s", type=float, default=300.0)
    ap.add_argument("--start-hour", type=float, default=None,
                    help="UTC hour the run starts at (default 08:00; the simulated load peaks at 15:00)")
    ap.add_argument("--max-quiet-s", type=float, default=None)
    ap.add_argument("--max-duration-s", type=float, default=None,
                    help="cap every scenario's simulated time (faults after the cap are dropped)")
    ap.add_argument("--only", nargs="+")
    ap.add_argument("--quick", action="store_true", help="the short library on the small test site")
    ap.add_argument("--out", type=Path, help="also write report.json and score.json here")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--determinism", default="auto", metavar="NAME",
                    help="scenario to run again in a fresh interpreter (default: the one with most faults; 'none': skip)")
    ap.add_argument("--combine", nargs="+", type=Path, metavar="DIR",
                    help="score the --out folders of earlier runs (parts of one library run side by side) as one")
    args = ap.parse_args()
    if args.combine:
        return combine(args.combine, args.site or REPO / "examples/demo-site.yaml")
    site_path = args.site or (REPO / ("tests/data/small-site.yaml" if args.quick else "examples/demo-site.yaml"))
    scen_path = args.scenarios or library_path("quick" if args.quick else "library")
    cfg = load_site(site_path)
    inv = build_inventory(cfg)
    spec = load_scenarios(scen_path, inv)
    if args.max_quiet_s:
        spec = spec.model_copy(update={"scenarios": tuple(
            s if s.faults or s.duration_s <= args.max_quiet_s else s.model_copy(update={"duration_s": args.max_quiet_s})
            for s in spec.scenarios)})
    if args.max_duration_s:
        cap = args.max_duration_s
        spec = spec.model_copy(update={"scenarios": tuple(
            s if not s.faults or s.duration_s <= cap else s.model_copy(update={
                "duration_s": cap, "faults": tuple(f for f in s.faults if f.at_s < cap)})
            for s in spec.scenarios)})
    opts = EvalOptions(seed=args.seed, warmup_s=args.warmup_s, baseline=not args.no_baseline, start_hour=args.start_hour)
    only = set(args.only) if args.only else None
    print(f"outages: site {inv.site} ({inv.n_accel} accelerators), {scen_path.name}, seed {args.seed}, "
          f"warm-up {args.warmup_s:g} s", file=sys.stderr)
    c0, w0 = time.process_time(), time.monotonic()
    rep = evaluate(cfg, spec, opts, progress=lambda line: print(line, file=sys.stderr, flush=True), only=only)
    cpu, wall = time.process_time() - c0, time.monotonic() - w0
    sim_s = sum(s["duration_s"] + args.warmup_s for s in rep["scenarios"])
    corr = score(rep, inv)
    base_rep = {"scenarios": [{**s, **s["baseline"]} for s in rep["scenarios"] if "baseline" in s]}
    base = score(base_rep, inv) if base_rep["scenarios"] else None
    for s in corr["per_scenario"]:
        causes = "; ".join(f"{c['fault']} {'+'.join(c['targets'])}: {c['incidents']} inc {c['roots']} "
                           f"{c['severities']}{'' if c['expected_severity'] is None else ' want ' + c['expected_severity']}"
                           for c in s["causes"])
        print(f"  {s['name']}: {s['raw_alarms']} raw -> {s['incidents']} incidents, {s['spurious']} spurious, "
              f"{s['pages']} pages | {causes}")
    # determinism: the scenario with the most faults, again in a fresh process
    pick = None
    if args.determinism == "auto":
        pick = max(rep["scenarios"], key=lambda s: (len(s["faults"]), -s["duration_s"]))
    elif args.determinism != "none":
        pick = next(s for s in rep["scenarios"] if s["name"] == args.determinism)
    same = _determinism(site_path, scen_path, pick["name"], args.seed, args.warmup_s, pick, args.start_hour) if pick else None
    result = {
        "bench": "outages",
        "site": inv.site,
        "scenario_file": scen_path.name,
        "scenarios": len(rep["scenarios"]),
        "seed": args.seed,
        "warmup_s": args.warmup_s,
        "start_hour": args.start_hour,
        "max_duration_s": args.max_duration_s,
        "max_quiet_s": args.max_quiet_s,
        "simulated_s": sim_s,
        "cpu_s": round(cpu, 1),
        "wall_s": round(wall, 1),
        "cpu_s_per_simulated_hour": round(cpu * 3600.0 / sim_s, 1) if sim_s else None,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "deterministic": same,
        "determinism_scenario": pick["name"] if pick else None,
        "correlated": _figures(corr),
        "baseline_no_correlation": _figures(base) if base else None,
    }
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "report.json").write_text(json.dumps(rep, indent=1, sort_keys=True) + "\n")
        (args.out / "score.json").write_text(json.dumps({"correlated": corr, "baseline": base}, indent=1) + "\n")
        (args.out / "bench.json").write_text(json.dumps(result, sort_keys=True) + "\n")
    report(result)
    return 0


def combine(dirs: list[Path], site: Path) -> int:
    inv = build_inventory(load_site(site))
    reps = [json.loads((d / "report.json").read_text()) for d in dirs]
    runs = [json.loads((d / "bench.json").read_text()) for d in dirs]
    rep = {"scenarios": [s for r in reps for s in r["scenarios"]]}
    corr = score(rep, inv)
    base_rep = {"scenarios": [{**s, **s["baseline"]} for s in rep["scenarios"] if "baseline" in s]}
    sim_s = sum(r["simulated_s"] for r in runs)
    cpu = sum(r["cpu_s"] for r in runs)
    report({
        "bench": "outages", "site": inv.site, "combined_from": [str(d) for d in dirs],
        "scenario_file": runs[0]["scenario_file"], "scenarios": len(rep["scenarios"]), "seed": runs[0]["seed"],
        "warmup_s": runs[0]["warmup_s"], "simulated_s": sim_s, "cpu_s": round(cpu, 1),
        "cpu_s_per_simulated_hour": round(cpu * 3600.0 / sim_s, 1) if sim_s else None,
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        "deterministic": (all(r["deterministic"] for r in checked) if (checked := [r for r in runs if r["deterministic"]
                                                                                  is not None]) else None),
        "determinism_scenario": [r["determinism_scenario"] for r in runs if r["determinism_scenario"]],
        "correlated": _figures(corr),
        "baseline_no_correlation": _figures(score(base_rep, inv)) if base_rep["scenarios"] else None,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
