"""`dcops redfish poll`: one poll of one BMC, for an operator checking a server.

    dcops redfish poll --target https://bmc-host --user U --password-env VAR [--ca FILE | --insecure]
                       [--auth session|basic] [--logs] [--format json|table]

Readings in canonical units: `{"chassis", "sensor", "context", "metric", "unit", "value"}`;
with `--logs`, the BMC's log entries too. `missing` lists parts without a reading and why
(absent bay, disabled sensor); `problems` the resources the BMC could not serve. TLS is
verified unless `--insecure` says otherwise; the password comes from an environment variable,
never from the command line. Exit status: 0 read, 1 BMC unreachable or refusing, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="redfish_command", metavar="SUBCOMMAND")
    p = sub.add_parser("poll", help="read one BMC once")
    p.add_argument("--target", required=True, help="the BMC's URL, e.g. https://10.1.2.3 (http:// for a lab mockup)")
    p.add_argument("--user", default=None, help="BMC account")
    p.add_argument("--password-env", default=None, metavar="VAR", help="environment variable holding the password")
    p.add_argument("--ca", default=None, metavar="FILE", help="CA bundle that signed this BMC's certificate")
    p.add_argument("--insecure", action="store_true", help="do not verify the BMC's TLS certificate (explicit opt-out)")
    p.add_argument("--auth", choices=("session", "basic", "none"), default="session",
                   help="session login (falls back to basic when the BMC refuses sessions), basic, or none")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    p.add_argument("--logs", action="store_true", help="also print the BMC's log entries (SEL, event logs)")
    p.add_argument("--format", choices=("json", "table"), default="table")


def run(args) -> int:
    if getattr(args, "redfish_command", None) != "poll":
        print("dcops redfish: say `poll` (see dcops redfish poll --help)", file=sys.stderr)
        return 2
    from dcops.catalogue import METRICS
    from dcops.collectors.redfish_client import BmcTarget, BmcUnavailable, RedfishConnection
    from dcops.collectors.redfish_logs import read_logs
    from dcops.collectors.redfish_map import RedfishFetchError, read_bmc

    if not args.target.startswith(("https://", "http://")):
        print(f"dcops redfish: --target {args.target!r} must be a URL (https://HOST[:PORT])", file=sys.stderr)
        return 2
    if args.ca and args.insecure:
        print("dcops redfish: --ca and --insecure contradict each other", file=sys.stderr)
        return 2
    password = None
    if args.password_env:
        password = os.environ.get(args.password_env)
        if password is None:
            print(f"dcops redfish: environment variable {args.password_env} is not set", file=sys.stderr)
            return 2
    verify = False if args.insecure else (args.ca or True)
    host = args.target.split("://", 1)[1].split("/", 1)[0]
    target = BmcTarget(host, args.target, args.user, password, verify, args.timeout, args.auth)
    try:
        conn = RedfishConnection(target)
        try:
            snap = read_bmc(conn.fetch)
            entries = read_logs(conn.fetch, None, time.time_ns())[0] if args.logs else []
        finally:
            conn.close()
    except (BmcUnavailable, RedfishFetchError) as exc:
        print(f"dcops redfish: {exc}", file=sys.stderr)
        return 1
    readings = [{"chassis": r.chassis, "sensor": r.sensor, "context": r.context, "metric": r.metric,
                 "unit": METRICS[r.metric].unit, "value": r.value} for r in snap.readings]
    out = {"target": args.target, "chassis": snap.chassis, "readings": readings, "missing": snap.missing,
           "problems": snap.problems}
    if args.logs:
        out["log_entries"] = [e.__dict__ for e in entries]
    try:
        if args.format == "json":
            json.dump(out, sys.stdout, indent=1)
            sys.stdout.write("\n")
        else:
            for r in readings:
                print(f"{r['chassis']:<10} {r['sensor']:<44} {r['context']:<14} {r['metric']:<26} {r['value']:>12g} {r['unit']}")
            for m in snap.missing:
                print(f"missing: {m}", file=sys.stderr)
            for p in snap.problems:
                print(f"problem: {p}", file=sys.stderr)
            for e in entries:
                print(f"log {e.log} #{e.entry_id} {e.severity}: {e.message}")
        sys.stdout.flush()
    except BrokenPipeError:
        pass
    return 0
