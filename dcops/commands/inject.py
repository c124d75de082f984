"""`dcops inject FAULT --target NAME`: inject a fault into a running `dcops demo`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx

from dcops.demo_control import read_control
from dcops.sim import FAULT_TYPES


def add_arguments(p) -> None:
    p.add_argument("fault", nargs="?", help=f"fault type: {', '.join(sorted(FAULT_TYPES))}")
    p.add_argument("--target", help="component name or topology path (e.g. CRAC-H1-2, demo/H1/H1-R1/H1-R1-01/H1-R1-01-S01/3)")
    p.add_argument("--duration", type=float, default=-1.0, help="seconds (default: the fault type's default)")
    p.add_argument("--data-dir", default="var/demo", help="the demo's data directory (default var/demo)")
    p.add_argument("--list", action="store_true", help="list fault types and the faults injected so far")


def run(args) -> int:
    if args.list or not args.fault:
        return _list(Path(args.data_dir))
    try:
        ctl = read_control(Path(args.data_dir))
    except FileNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 1
    headers = {"X-DCOPS-Token": ctl["token"]}
    try:
        if not args.target:
            print("--target is required", file=sys.stderr)
            return 2
        r = httpx.post(ctl["url"] + "/inject", headers=headers, timeout=5,
                       json={"fault": args.fault, "target": args.target,
                             "duration_s": None if args.duration == 0 else args.duration})
    except httpx.HTTPError as exc:
        print(f"the demo at {ctl['url']} did not answer: {exc}", file=sys.stderr)
        return 1
    body = r.json()
    if r.status_code != 200:
        print(f"refused: {body.get('error')}", file=sys.stderr)
        return 2
    print(json.dumps(body, indent=2))
    return 0


def _list(data_dir: Path) -> int:
    """The fault types (no demo needed), then the faults a running demo has injected so far."""
    for name, ft in sorted(FAULT_TYPES.items()):
        print(f"{name:22s} targets {'/'.join(ft.target_kinds):28s} {ft.description}")
    try:
        ctl = read_control(data_dir)
    except FileNotFoundError:
        print(f"\nno demo is running with data in {data_dir} (start one with `dcops demo`); faults injected"
              " so far are listed while it runs", file=sys.stderr)
        return 0
    try:
        r = httpx.get(ctl["url"] + "/faults", headers={"X-DCOPS-Token": ctl["token"]}, timeout=5)
        labels = r.json()
    except (httpx.HTTPError, ValueError) as exc:
        print(f"\nthe demo at {ctl['url']} did not answer: {exc}", file=sys.stderr)
        return 1
    print(f"\ninjected so far ({len(labels)}):")
    for lab in labels:
        print(f"{lab['fault_id']} {lab['fault_type']} on {lab['target']}")
    return 0
