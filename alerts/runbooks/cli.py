"""`dcops runbook validate FILE...`: check runbook files (file, line and field for every error);
`dcops runbook list [DIR...]`: the runbooks and what they apply to; `dcops runbook executors`."""

from __future__ import annotations

import sys

from dcops.alerts.runbooks.executors import EXECUTORS
from dcops.alerts.runbooks.loader import DEFAULT_RUNBOOKS, load_runbooks
from dcops.yamlconf import ConfigError


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="runbook_command", metavar="ACTION")
    v = sub.add_parser("validate", help="validate runbook files or directories")
    v.add_argument("files", nargs="*", help=f"runbook YAML files or directories (default: {DEFAULT_RUNBOOKS})")
    ls = sub.add_parser("list", help="list runbooks and what they apply to")
    ls.add_argument("files", nargs="*", help="runbook files or directories (default: the shipped ones)")
    sub.add_parser("executors", help="list the action executors")


def run(args) -> int:
    action = getattr(args, "runbook_command", None)
    if action == "executors":
        for name, spec in EXECUTORS.items():
            print(f"{name:14s} {'destructive' if spec.destructive else 'safe':11s} {spec.summary}")
        return 0
    if action not in ("validate", "list"):
        print("usage: dcops runbook {validate FILE...|list [FILE...]|executors}", file=sys.stderr)
        return 2
    files = args.files or [str(DEFAULT_RUNBOOKS)]
    try:
        books = load_runbooks(files)
    except ConfigError as exc:
        exc.report()
        return 1
    if action == "list":
        for rb in books.values():
            a = rb.applies_to
            what = ", ".join(x for x in (" ".join(c.value for c in a.probable_causes), " ".join(a.device_kinds),
                                          " ".join(a.rules)) if x)
            print(f"{rb.id:22s} v{rb.version} {rb.title}  [{what}]")
        return 0
    n_steps = sum(len(rb.flow) + len(rb.rollback) for rb in books.values())
    print(f"OK: {len(books)} runbook(s), {n_steps} steps")
    return 0
