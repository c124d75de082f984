"""`dcops eval`: measure outage response and detectors.

    dcops eval outages --site SITE --scenarios FILE --out DIR [--seed N] [--only NAME ...]
        runs every scenario of FILE (YAML, see dcops/data/scenarios/library.yaml) through the
        production pipeline (simulator -> agents/collectors -> analytics -> rules -> correlation
        -> incidents -> notification routing) on simulated time and writes DIR/report.json;
        one progress line per scenario on stderr. `--library` names a shipped scenario file.
    dcops eval scenarios ... | dcops eval nab ...
        detector precision/recall and NAB scores (see `dcops.analytics.eval_cli`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dcops.analytics import eval_cli

LIBRARIES = ("library", "new-faults", "quick")


def library_path(name: str) -> Path:
    from importlib.resources import files

    return Path(str(files("dcops.data") / "scenarios" / f"{name}.yaml"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    eval_cli.add_arguments(parser)
    sub = next(a for a in parser._subparsers._group_actions if isinstance(a, argparse._SubParsersAction))
    o = sub.add_parser("outages", help="run outage scenarios through the production pipeline and report incidents")
    o.add_argument("--site", type=Path, help="site YAML (anything `dcops check` accepts; or -c FILE)")
    src = o.add_mutually_exclusive_group(required=True)
    src.add_argument("--scenarios", type=Path, help="scenario YAML file")
    src.add_argument("--library", choices=LIBRARIES, help="a scenario file shipped with dcops")
    o.add_argument("--out", required=True, type=Path, help="folder for report.json")
    o.add_argument("--seed", type=int, default=1)
    o.add_argument("--only", nargs="+", metavar="NAME", help="only these scenarios")
    o.add_argument("--warmup-s", type=float, default=900.0, help="simulated warm-up before each scenario (default 900)")
    o.add_argument("--start-hour", type=float, default=None,
                   help="UTC hour each run starts at (default 08:00); the simulated load peaks at 15:00")
    o.add_argument("--no-correlation", action="store_true", help="baseline: every alarm its own incident")
    o.add_argument("--no-analytics", action="store_true", help="rules only (no analytics findings)")
    o.add_argument("--baseline", action="store_true",
                   help="also run an alerter without correlation on the same input (each scenario's \"baseline\")")


def run(args: argparse.Namespace) -> int:
    if args.eval_command != "outages":
        return eval_cli.run(args)
    return run_outages(args)


def run_outages(args: argparse.Namespace) -> int:
    from dcops.evaluation import EvalOptions, evaluate, load_scenarios
    from dcops.site import load_site
    from dcops.topology import build_inventory
    from dcops.yamlconf import ConfigError

    if args.site is None:
        print("dcops eval outages: which site? give --site FILE (or -c FILE)", file=sys.stderr)
        return 2
    args.site = Path(args.site)
    try:
        site = load_site(args.site)
    except ConfigError as exc:
        exc.report(f"dcops eval outages: site {args.site}: {len(exc.problems)} problem(s)")
        return 2
    path = args.scenarios or library_path(args.library)
    inv = build_inventory(site)
    try:
        spec = load_scenarios(path, inv)
    except ConfigError as exc:
        exc.report(f"dcops eval outages: scenarios {path}: {len(exc.problems)} problem(s)")
        return 2
    except OSError as exc:
        print(f"dcops eval outages: cannot read {path}: {exc}", file=sys.stderr)
        return 2
    only = set(args.only) if args.only else None
    if only:
        unknown = only - {s.name for s in spec.scenarios}
        if unknown:
            print(f"dcops eval outages: no scenario named {', '.join(sorted(unknown))} in {path}", file=sys.stderr)
            return 2
    opts = EvalOptions(seed=args.seed, warmup_s=args.warmup_s, correlation=not args.no_correlation,
                       analytics=not args.no_analytics, baseline=args.baseline, start_hour=args.start_hour)
    print(f"dcops eval outages: site {inv.site} ({len(inv.racks)} racks, {inv.n_accel} accelerators), "
          f"{len(spec.scenarios) if not only else len(only)} scenario(s) from {path}, seed {args.seed}",
          file=sys.stderr)
    from dcops.evaluation.outages import EvalError

    try:
        report = evaluate(site, spec, opts, progress=lambda line: print(line, file=sys.stderr, flush=True), only=only)
    except EvalError as exc:
        import logging

        logging.getLogger("dcops.eval").debug("scenario failed", exc_info=exc.__cause__)
        print(f"dcops eval outages: {exc} (run with -vv for the traceback)", file=sys.stderr)
        return 1
    report["site"] = inv.site
    report["scenario_file"] = str(path)
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / "report.json"
    out.write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    print(f"report: {out}", file=sys.stderr)
    return 0
