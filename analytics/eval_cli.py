"""`dcops eval`: measure detectors against simulated fault scenarios and the NAB benchmark.

    dcops eval nab --data-dir DIR --out OUTDIR
        scores every CSV under DIR/data/ causally into OUTDIR/<same relative path>
        (timestamp,value,anomaly_score) and prints NAB's standard-profile score when
        DIR/labels/combined_windows.json exists (profile from DIR/config/profiles.json).
        --cv adds leave-one-file-out and leave-one-category-out scores (parameters chosen on the
        other files only) for every profile; --detector legacy scores the pre-vote detector.
    dcops eval scenarios [--seed N] [--out FILE]
        injects every simulator fault type several times and prints per-type precision,
        recall and median time to detect against the ground-truth labels.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dcops.analytics import nab
from dcops.analytics.detectors.novelty import LEGACY, NoveltyParams, novelty_scores

NAB_DETECTORS = {"vote": NoveltyParams(), "legacy": LEGACY}

# NAB's own standard profile, used when DIR/config/profiles.json is absent.
STANDARD_PROFILE = {"tpWeight": 1.0, "fpWeight": 0.11, "fnWeight": 1.0}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="eval_command", metavar="WHAT", required=True)
    p = sub.add_parser("nab", help="score a NAB-format corpus causally and compute NAB's score")
    p.add_argument("--data-dir", required=True, type=Path, help="NAB root (with data/, labels/, config/)")
    p.add_argument("--out", required=True, type=Path, help="folder for the per-file score CSVs")
    p.add_argument("--profile", default="standard", help="NAB profile name (default: standard)")
    p.add_argument("--cv", action="store_true", help="also report cross-validated (out-of-sample) scores")
    p.add_argument("--detector", choices=sorted(NAB_DETECTORS), default="vote", help="novelty settings (default: vote)")
    s = sub.add_parser("scenarios", help="inject each simulator fault type and measure detection")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--repeats", type=int, default=4, help="injections per fault type")
    s.add_argument("--out", type=Path, help="write the report as JSON here")
    s.add_argument("--types", nargs="+", metavar="FAULT", help="only these fault types (default: all)")
    s.add_argument("--site", type=Path, help="site YAML to simulate (default: the shipped small site, dcops/data/sites/small-site.yaml)")


def run(args: argparse.Namespace) -> int:
    try:
        if args.eval_command == "nab":
            return run_nab(args.data_dir, args.out, args.profile, args.cv, NAB_DETECTORS[args.detector])
        return run_scenarios(args.seed, args.repeats, args.out, args.types, args.site)
    except nab.NabError as exc:
        print(f"dcops eval: {exc}", file=sys.stderr)
        return 2


def run_nab(root: Path, out: Path, profile: str = "standard", cv: bool = False,
            params: NoveltyParams = NoveltyParams()) -> int:
    data_dir = root / "data" if (root / "data").is_dir() else root
    files = nab.nab_files(data_dir)
    scored = nab.run_detector(files, lambda f: novelty_scores(f.values, params))
    for f in files:
        nab.write_scores(out, f, scored[f.relative_path])
    print(f"wrote {len(files)} score files under {out}")
    labels = root / "labels" / "combined_windows.json"
    if not labels.exists():
        print(f"no {labels}: NAB score not computed")
        return 0
    profiles = root / "config" / "profiles.json"
    cost = nab.load_profile(profiles, profile) if profiles.exists() else dict(STANDARD_PROFILE)
    windows = nab.load_windows(labels)
    result = nab.score_corpus({f.relative_path: (f.timestamps, scored[f.relative_path]) for f in files}, windows, cost)
    for path, value in sorted(result.per_file.items()):
        print(f"  {value:8.3f}  {path}")
    print(f"threshold {result.threshold:.6f}  raw {result.raw:.3f}  null {result.null:.3f}  perfect {result.perfect:.3f}  "
          f"rows tp={result.counts['tp']} fp={result.counts['fp']} fn={result.counts['fn']} tn={result.counts['tn']}")
    if cv:
        from dcops.analytics.nab_cv import cv_report

        names = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")
        costs = {n: nab.load_profile(profiles, n) for n in names} if profiles.exists() else {profile: cost}
        lines, _ = cv_report(files, windows, costs, params)
        print("\n".join(lines))
    print(f"NAB {profile} score: {result.score:.2f}")
    return 0


def run_scenarios(seed: int, repeats: int, out: Path | None, types=None, site: Path | None = None) -> int:
    from dcops.analytics.scenarios import ScenarioConfig, evaluate_scenarios, format_report
    from dcops.sim import FAULT_TYPES

    unknown = sorted(set(types or ()) - set(FAULT_TYPES))
    if unknown:
        print(f"dcops eval scenarios: unknown fault type(s) {unknown}; known: {sorted(FAULT_TYPES)}", file=sys.stderr)
        return 2
    cfg = ScenarioConfig(seed=seed, repeats=repeats, **({"site": site} if site else {}))
    report = evaluate_scenarios(config=cfg, fault_types=types)
    print(format_report(report))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2, sort_keys=True))
    return 0
