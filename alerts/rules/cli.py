"""`dcops rules check FILE...`: validate alert rule files; `dcops rules alerting FILE`: validate
an alerting config (receivers, routes, escalation); `dcops rules types`: list rule types."""

from __future__ import annotations

import json
import sys

from dcops.alerts.rules.engine import DEFAULT_RULES, RULE_TYPES, load_rules
from dcops.yamlconf import ConfigError


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="rules_command", metavar="ACTION")
    c = sub.add_parser("check", help="validate rule files (file, line and field for every error)")
    c.add_argument("files", nargs="*", help=f"rule YAML files (default: the shipped pack {DEFAULT_RULES.name})")
    c.add_argument("--format", choices=("text", "json"), default="text")
    a = sub.add_parser("alerting", help="validate an alerting config (receivers, routes, on-call, escalation)")
    a.add_argument("file", help="alerting YAML file")
    sub.add_parser("types", help="list the rule types")


def run(args) -> int:
    action = getattr(args, "rules_command", None)
    if action == "types":
        for name, rt in RULE_TYPES.items():
            print(f"{name:10s} ({rt.feeds}): {rt.summary}")
        return 0
    if action == "alerting":
        return _check_alerting(args.file)
    if action != "check":
        print("usage: dcops rules {check FILE...|alerting FILE|types}", file=sys.stderr)
        return 2
    files = args.files or [str(DEFAULT_RULES)]
    as_json = getattr(args, "format", "text") == "json"
    try:
        rules = load_rules(files)
    except ConfigError as exc:
        if as_json:
            print(json.dumps({"ok": False, "files": files, "problems": [
                {"file": p.file, "line": p.line, "field": p.field, "message": p.message} for p in exc.problems]}))
        else:
            exc.report()
        return 1
    kinds: dict[str, int] = {}
    for r in rules:
        kinds[r.type] = kinds.get(r.type, 0) + 1
    if as_json:
        print(json.dumps({"ok": True, "files": files, "rules": len(rules), "types": dict(sorted(kinds.items())),
                          "problems": []}))
        return 0
    print(f"OK: {len(rules)} rules in {len(files)} file(s) ({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))})")
    return 0


def _check_alerting(path: str) -> int:
    from dcops.alerts.config import load_alerting

    try:
        cfg = load_alerting(path)
    except ConfigError as exc:
        exc.report()
        return 1
    print(f"OK: {len(cfg.receivers)} receivers, {len(cfg.schedules)} schedules, "
          f"{len(cfg.escalation_policies)} escalation policies, {len(cfg.inhibit_rules)} inhibition rules")
    return 0
