"""`dcops snmp`: try a device before adding it, list profiles, receive traps.

    dcops snmp poll --target HOST:PORT --community C [--profile NAME|auto] [--format json]
    dcops snmp poll --target HOST:PORT --v3-user U --auth-protocol SHA256 --auth-key K \
                    --priv-protocol AES128 --priv-key P
    dcops snmp profiles
    dcops snmp discover --target HOST:PORT --community C [--write-profile FILE.yaml] [--format json]
    dcops snmp traps --listen 127.0.0.1:1162 --community public [--v3-user ...] [--format json]

`poll --format json` prints one JSON list of readings, each {"metric", "unit", "index",
"description", "value"} (+ "oid"), units canonical. Exit status: 0 ok, 1 agent trouble (timeout,
SNMPv3 credentials, no profile), 2 bad arguments. Keys given on the command line can also come
from the environment (DCOPS_SNMP_COMMUNITY, DCOPS_SNMP_AUTH_KEY, DCOPS_SNMP_PRIV_KEY), which
keeps them out of shell history and process lists.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

from pydantic import ValidationError

from dcops.site import SnmpTarget

__all__ = ["add_arguments", "run", "target_from_args"]


def _host_port(text: str, default_port: int) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, default_port
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad port in {text!r} (expected HOST:PORT)") from None


def _add_auth(p: argparse.ArgumentParser) -> None:
    p.add_argument("--community", default=None, help="SNMPv2c community (or $DCOPS_SNMP_COMMUNITY; default public)")
    p.add_argument("--v3-user", default=None, help="SNMPv3 user: switches to SNMPv3 authPriv")
    p.add_argument("--auth-protocol", default="SHA256", choices=["SHA", "SHA256", "SHA512", "MD5"])
    p.add_argument("--auth-key", default=None, help="SNMPv3 auth passphrase (or $DCOPS_SNMP_AUTH_KEY)")
    p.add_argument("--priv-protocol", default="AES128", choices=["AES128", "AES256", "DES"])
    p.add_argument("--priv-key", default=None, help="SNMPv3 privacy passphrase (or $DCOPS_SNMP_PRIV_KEY)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="snmp_command", required=True)
    p = sub.add_parser("poll", help="poll one agent once and print its readings")
    p.add_argument("--target", required=True, help="HOST:PORT of the agent (port 161 if omitted)")
    _add_auth(p)
    p.add_argument("--profile", default="auto", help="profile name (see `dcops snmp profiles`) or auto")
    p.add_argument("--timeout", type=float, default=2.0, help="seconds per try")
    p.add_argument("--retries", type=int, default=1)
    p.add_argument("--format", choices=["table", "json"], default="table")
    sub.add_parser("profiles", help="list the device profiles, what picks them, and whether a recording verified them")
    d = sub.add_parser("discover", help="walk a device: which profile matches, what it reads, which sensor tables it does not")
    d.add_argument("--target", required=True, help="HOST:PORT of the agent (port 161 if omitted)")
    _add_auth(d)
    d.add_argument("--timeout", type=float, default=3.0, help="seconds per try")
    d.add_argument("--retries", type=int, default=1)
    d.add_argument("--write-profile", default=None, metavar="FILE", help="write a starting profile YAML for the unmapped tables")
    d.add_argument("--name", default="my-device", help="profile name for --write-profile")
    d.add_argument("--format", choices=["table", "json"], default="table")
    t = sub.add_parser("traps", help="receive traps/informs and print them as events")
    t.add_argument("--listen", default="0.0.0.0:162", help="HOST:PORT to listen on")
    _add_auth(t)
    t.add_argument("--engine-id", action="append", default=[], help="SNMPv3 trap sender engine ID (hex), repeatable")
    t.add_argument("--count", type=int, default=0, help="exit after this many notifications (0: run until Ctrl-C)")
    t.add_argument("--format", choices=["table", "json"], default="table")


def target_from_args(args, default_port: int = 161) -> SnmpTarget:
    host, port = _host_port(args.target, default_port)
    env = os.environ
    spec = {"host": host, "port": port, "profile": getattr(args, "profile", "auto"),
            "timeout_s": getattr(args, "timeout", 2.0), "retries": getattr(args, "retries", 1)}
    if args.v3_user:
        auth_key = args.auth_key or env.get("DCOPS_SNMP_AUTH_KEY")
        priv_key = args.priv_key or env.get("DCOPS_SNMP_PRIV_KEY")
        if not auth_key or not priv_key:
            raise ValueError("SNMPv3 authPriv needs --auth-key and --priv-key (or DCOPS_SNMP_AUTH_KEY / DCOPS_SNMP_PRIV_KEY)")
        spec.update(version="3", user=args.v3_user, auth_protocol=args.auth_protocol, auth_key=auth_key,
                    priv_protocol=args.priv_protocol, priv_key=priv_key)
    else:
        spec.update(version="2c", community=args.community or env.get("DCOPS_SNMP_COMMUNITY") or "public")
    return SnmpTarget(**spec)


def _table(rows: list[dict]) -> str:
    head = ("metric", "index", "value", "unit", "description")
    cells = [[r["metric"], r["index"], f"{r['value']:.6g}", r["unit"], r["description"]] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def _poll(args) -> int:
    from dcops.collectors.snmp_engine import SnmpClient
    from dcops.collectors.snmp_poller import poll_agent

    try:
        target = target_from_args(args)
    except (ValueError, ValidationError) as exc:
        print(f"dcops snmp poll: {exc}", file=sys.stderr)
        return 2

    async def once():
        client = SnmpClient()
        try:
            return await poll_agent(client, target)
        finally:
            client.close()

    res = asyncio.run(once())
    if not res.ok:
        print(f"dcops snmp poll: {res.error}", file=sys.stderr)
        return 1
    rows = [r.to_dict() for r in res.readings]
    if args.format == "json":
        print(json.dumps(rows, indent=None))
    else:
        print(f"{res.target}: profile {res.profile}, {len(rows)} readings in {res.duration_s:.2f}s")
        print(_table(rows))
    for m in res.missing:  # sentinels, unmapped states, impossible values: never printed as readings
        print(f"missing: {m.oid} {m.metric} index {m.index!r}: {m.reason}", file=sys.stderr)
    for p in res.problems:
        print(f"warning: {p}", file=sys.stderr)
    return 0


def _discover(args) -> int:
    from dcops.collectors.snmp_discover import WALK_ROOTS, discover, starter_profile
    from dcops.collectors.snmp_engine import SnmpClient, SnmpError

    try:
        target = target_from_args(args)
    except (ValueError, ValidationError) as exc:
        print(f"dcops snmp discover: {exc}", file=sys.stderr)
        return 2

    async def walk():
        client = SnmpClient()
        try:
            s = await client.session(target)
            tables, problems, _ = await client.walk(s, WALK_ROOTS, max_rounds=5000)
            return {f"{root}.{sfx}": v for root, rows in tables.items() for sfx, v in rows.items()}, problems
        finally:
            client.close()

    try:
        pairs, problems = asyncio.run(walk())
    except SnmpError as exc:
        print(f"dcops snmp discover: {exc}", file=sys.stderr)
        return 1
    d = discover(pairs)
    if args.format == "json":
        print(json.dumps({"sysObjectID": d.sys_object_id, "sysDescr": d.sys_descr, "profiles": d.profiles,
                          "oids_walked": len(pairs), "readings": [r.to_dict() for r in d.readings],
                          "missing": [m.to_dict() for m in d.missing],
                          "unmapped": [{"oid": c.oid, "rows": c.rows, "samples": dict(c.samples), "label": c.label, "guess": c.guess}
                                       for c in d.unmapped]}))
    else:
        print(f"{args.target}: sysObjectID {d.sys_object_id or '-'}, sysDescr {d.sys_descr[:60]!r}, {len(pairs)} OIDs walked")
        print(f"profile(s): {' + '.join(d.profiles) or 'none matches'}")
        print(f"reads {len(d.readings)} sensors:")
        print(_table([r.to_dict() for r in d.readings]))
        for m in d.missing:
            print(f"missing: {m.oid} {m.metric}: {m.reason}")
        print(f"{len(d.unmapped)} sensor-looking column(s) no profile reads:")
        for c in d.unmapped:
            sample = ", ".join(f"{r}={v}" for r, v in c.samples)
            print(f"  {c.oid:48} {c.rows:3} rows  e.g. {sample:30}  {c.label!r}  -> {c.guess or '?'}")
    for p in problems + d.problems:
        print(f"warning: {p}", file=sys.stderr)
    if args.write_profile:
        from pathlib import Path

        Path(args.write_profile).write_text(starter_profile(d, args.name), encoding="utf-8")
        print(f"wrote a starting profile to {args.write_profile}: check units and scale against the MIB, then add it to "
              f"collectors/data/snmp/profiles.yaml (docs/snmp-vendors.md)", file=sys.stderr)
    return 0


def _profiles(args) -> int:
    from dcops.collectors.snmp_profiles import default_profiles

    for p in sorted(default_profiles().values(), key=lambda p: p.name):
        picks = [*(f"sysObjectID {o}" for o in p.sysobjectid), *(f"sysDescr /{r.pattern}/" for r in p.sysdescr)]
        picks += [f"probe {o}" for o in p.probes]
        checked = f"verified against {', '.join(p.verified)}" if p.verified else "NOT verified against a recording (from the MIB)"
        kind = "standard MIB fallback" if p.standard else "vendor family"
        print(f"{p.name:18} {len(p.sensors):3} sensors  {p.description}")
        print(f"{'':18}     {kind}; {checked}")
        print(f"{'':18}     picked by: {'; '.join(picks) or 'explicit --profile only'}")
    return 0


def _traps(args) -> int:
    from dcops.collectors.snmp_traps import TrapReceiverConfig, TrapUser, receive_forever

    host, port = _host_port(args.listen, 162)
    users = ()
    if args.v3_user:
        users = (TrapUser(user=args.v3_user, auth_protocol=args.auth_protocol,
                          auth_key=args.auth_key or os.environ.get("DCOPS_SNMP_AUTH_KEY", ""),
                          priv_protocol=args.priv_protocol,
                          priv_key=args.priv_key or os.environ.get("DCOPS_SNMP_PRIV_KEY", ""),
                          engine_ids=tuple(args.engine_id)),)
    cfg = TrapReceiverConfig(host=host, port=port,
                             communities=(args.community or os.environ.get("DCOPS_SNMP_COMMUNITY") or "public",),
                             users=users)

    def show(events) -> None:
        for e in events:
            if args.format == "json":
                print(e.to_json(), flush=True)
            else:
                print(f"{e.kind:18} {e.severity:9} {e.target.get('device', e.attributes.get('agent', '')):14} {e.message}", flush=True)

    return receive_forever(cfg, show, count=args.count)


def run(args) -> int:
    try:
        return {"poll": _poll, "profiles": _profiles, "discover": _discover, "traps": _traps}[args.snmp_command](args)
    except BrokenPipeError:  # output piped into `head` and friends
        return 0
