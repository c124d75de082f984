"""The `dcops` command line.

Subcommands are registered in `COMMANDS` (name -> module, one-line help). Each module has
`add_arguments(parser)` and `run(args) -> int`; only the chosen one is imported, so
`dcops check` stays fast and a broken optional stage cannot break the others.

One convention for the site config: `-c FILE` / `--config FILE` is accepted anywhere on the line,
before or after the subcommand and its action (`dcops -c site.yaml console-user add NAME` and
`dcops console-user add NAME -c site.yaml` are the same); it fills the command's `config` (or
`site`) argument, and a command reads it after parsing (no parser marks it required).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from dcops import __version__

COMMANDS: dict[str, tuple[str, str]] = {
    "check": ("dcops.commands.check", "validate a site config (file, line and field for every error)"),
    "demo": ("dcops.commands.demo", "run the simulated demo site end to end and serve the console"),
    "sim": ("dcops.commands.sim", "run the simulator and print or store its samples and fault labels"),
    "inject": ("dcops.commands.inject", "inject a fault into a running demo"),
    "up": ("dcops.commands.up", "run the roles a site config names (poller, agent, ingest, ...)"),
    "role": ("dcops.commands.role", "run one role as its own process"),
    "snmp": ("dcops.collectors.snmp_cli", "SNMP: poll a device once, list profiles, receive traps"),
    "agent": ("dcops.collectors.agent_cli", "accelerator agent: NVML GPUs, NPUs, dcgm-exporter scrape"),
    "redfish": ("dcops.collectors.redfish_cli", "Redfish: poll one server BMC (PSUs, fans, temperatures, coolant, logs)"),
    "eval": ("dcops.commands.eval", "evaluate outage response (scenarios through the whole pipeline) and detectors"),
    "train": ("dcops.analytics.train_cli", "train anomaly models from the store's history"),
    "rules": ("dcops.alerts.rules.cli", "validate alert rule files"),
    "runbook": ("dcops.alerts.runbooks.cli", "validate and list runbooks (methods of procedure)"),
    "incidents": ("dcops.alerts.history.cli", "incident history: postmortem export, MTTA/MTTR"),
    "console-user": ("dcops.console.users_cli", "console accounts: add, list, set-role, disable"),
    "audit": ("dcops.commands.audit", "verify the audit chain (keyed MACs and anchors)"),
    "db": ("dcops.commands.db", "database schema: upgrade to the newest revision, show the current one"),
}


def _build_parser(chosen: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dcops", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"dcops {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            mod = importlib.import_module(module)
            mod.add_arguments(p)
            p.set_defaults(_run=mod.run)
    return parser


def configure_logging(verbose: int, **kw) -> None:
    """WARNING by default, INFO at -v, DEBUG at -vv; secrets and credentials masked at every level."""
    from dcops.secrets import install_log_redaction

    logging.basicConfig(level=logging.WARNING - 10 * min(verbose, 2),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", **kw)
    install_log_redaction()


def take_config(argv: list[str]) -> tuple[list[str], str | None]:
    """(argv without its `-c FILE` / `--config FILE` / `--config=FILE` / `-cFILE`, the last FILE given)."""
    rest: list[str] = []
    config = None
    it = iter(argv)
    for a in it:
        if a == "--":
            rest.append(a)
            rest.extend(it)
            break
        if a in ("-c", "--config"):
            config = next(it, None)
            if config is None:
                rest.append(a)  # argparse says "expected one argument"
        elif a.startswith("--config="):
            config = a.split("=", 1)[1]
        elif a.startswith("-c") and len(a) > 2 and not a.startswith("--"):
            config = a[2:]
        else:
            rest.append(a)
    return rest, config


def main(argv: list[str] | None = None) -> int:
    argv, config = take_config(list(sys.argv[1:] if argv is None else argv))
    chosen = next((a for a in argv if not a.startswith("-")), None)
    if chosen not in COMMANDS:
        chosen = None
    parser = _build_parser(chosen)
    args = parser.parse_args(argv)
    if config is not None:
        if hasattr(args, "config"):
            args.config = config
        elif hasattr(args, "site"):
            args.site = config
        else:
            parser.error(f"dcops {args.command or ''}: -c/--config is not an option of this command")
    configure_logging(args.verbose)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
