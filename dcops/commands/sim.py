"""`dcops sim`: run the simulator headless; inject faults; print a summary, samples and labels."""

from __future__ import annotations

import json
import sys
import time

from dcops.site import load_site
from dcops.yamlconf import ConfigError

NS = 1_000_000_000


def add_arguments(p) -> None:
    p.add_argument("-c", "--config", help="site YAML (required)")
    p.add_argument("--steps", type=int, default=360, help="sample intervals to simulate (default 360 = 1 h)")
    p.add_argument("--interval", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--start", type=float, default=None, help="start time, Unix seconds (default: now)")
    p.add_argument("--inject", action="append", default=[], metavar="[STEP@]FAULT:TARGET",
                   help="inject a fault, e.g. 30@crac_failure:CRAC-1 (repeatable)")
    p.add_argument("--labels", help="write the ground-truth fault labels here (JSON)")
    p.add_argument("--store", help="also write every sample to this DuckDB file")


def _parse_injection(spec: str) -> tuple[int, str, str]:
    step = 0
    if "@" in spec:
        at, spec = spec.split("@", 1)
        step = int(at)
    fault, _, target = spec.partition(":")
    if not fault or not target:
        raise ValueError(f"--inject {spec!r}: expected [STEP@]FAULT:TARGET")
    return step, fault, target


def run(args) -> int:
    from dcops.sim import Simulator

    if not args.config:
        print("dcops sim: -c/--config SITE.yaml is required", file=sys.stderr)
        return 2
    try:
        cfg = load_site(args.config)
        plan = sorted(_parse_injection(s) for s in args.inject)
    except ConfigError as exc:
        print("\n".join(str(p) for p in exc.problems), file=sys.stderr)
        return 1
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    start = int((args.start if args.start is not None else time.time()) * NS)
    sim = Simulator(cfg, seed=args.seed, start_ns=start, interval_s=args.interval)
    store = None
    if args.store:
        from dcops.store.duckdb_store import DuckDBStore

        store = DuckDBStore(args.store)
    values = 0
    t0 = time.perf_counter()
    for step in range(args.steps):
        while plan and plan[0][0] <= step:
            _, fault, target = plan.pop(0)
            try:
                label = sim.inject(fault, target)
            except (KeyError, ValueError) as exc:
                print(f"cannot inject {fault} on {target}: {exc}", file=sys.stderr)
                return 2
            print(f"step {step}: injected {label.fault_type} on {label.target} ({len(label.affected)} components affected)")
        sim.step()
        if store is not None:
            batches = sim.batches()
            values += store.write(batches)
            store.write_events(sim.events_since(0)[0])
    wall = time.perf_counter() - t0
    inv = sim.inventory
    print(f"simulated {args.steps} steps ({args.steps * args.interval / 3600:.2f} h) of {inv.n_accel} accelerators "
          f"in {wall:.2f} s ({args.steps * args.interval / max(wall, 1e-9):,.0f}x real time)")
    print(f"IT load {sim.r_power.sum() / 1e3:,.1f} kW; hottest accelerator {sim.temp.max():.1f} degC; "
          f"{int(sim.thermal.sum())} throttling; servers down {int((~sim.s_up).sum())}")
    if store is not None:
        print(f"stored {values:,} values in {args.store}")
        store.close()
    if args.labels:
        with open(args.labels, "w", encoding="utf-8") as fh:
            json.dump([lab.to_dict() for lab in sim.labels], fh, indent=2)
        print(f"{len(sim.labels)} fault label(s) written to {args.labels}")
    return 0
