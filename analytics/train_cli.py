"""`dcops train`: fit the anomaly models and save them with their metadata.

    dcops train SITE.yaml [--hours 24] [--out var/models/analytics.joblib]
        trains on the last --hours of the store the site's settings name;
    dcops train SITE.yaml --simulate 360
        trains on that many fault-free simulated intervals instead (a first model for a demo).
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

from dcops.analytics.models import ModelBundle, ModelFileError
from dcops.analytics.service import DEFAULT_MODEL_PATH
from dcops.analytics.training import TrainingError, train_bundle, train_from_store


def add_arguments(p) -> None:
    p.add_argument("config", help="site YAML file")
    p.add_argument("--hours", type=float, default=24.0, help="history to train on (default 24)")
    p.add_argument("--out", type=Path, default=DEFAULT_MODEL_PATH, help=f"model file (default {DEFAULT_MODEL_PATH})")
    p.add_argument("--simulate", type=int, metavar="N", help="train on N simulated intervals instead of the store")
    p.add_argument("--seed", type=int, default=0)


def run(args) -> int:
    from dcops.site import load_site
    from dcops.topology import build_inventory
    from dcops.yamlconf import ConfigError

    try:
        cfg = load_site(args.config)
    except ConfigError as exc:
        exc.report(f"{args.config}: {len(exc.problems)} problem(s)")
        return 1
    inv = build_inventory(cfg)
    previous = None
    if args.out.exists():
        try:
            previous = ModelBundle.load(args.out)
        except ModelFileError as exc:
            print(f"warning: {exc}; starting a new model series", file=sys.stderr)
    try:
        if args.simulate:
            from dcops.sim import Simulator

            sim = Simulator(inv, seed=args.seed, interval_s=cfg.settings.interval_s)
            history = []
            for _ in range(args.simulate):
                sim.step()
                history.append(sim.batches())
            bundle = train_bundle(inv, history, previous=previous, seed=args.seed)
        else:
            from dcops.store import open_store

            store = open_store(cfg.settings.store)
            try:
                bundle = train_from_store(store, inv, args.hours * 3600.0, previous=previous)
            finally:
                store.close()
    except TrainingError as exc:
        print(f"dcops train: {exc}", file=sys.stderr)
        return 1
    bundle.save(args.out)
    meta = asdict(bundle.metadata)
    print(f"model version {meta['model_version']} written to {args.out} ({meta['intervals']} intervals)")
    print(json.dumps({"rows": meta["rows"], "drift": meta["drift"]}, sort_keys=True))
    return 0
