"""`dcops up -c site.yaml`: run the roles the config names until Ctrl-C or SIGTERM.

With the Kafka bus (production), each role runs as its own process (`dcops role NAME`), and a
role that exits is restarted with exponential backoff. With the in-process bus (embedded),
every role runs as a thread of this one process sharing the bus, since an in-process bus cannot
span processes. On Ctrl-C/SIGTERM every role is asked to stop (SIGTERM), given `--grace`
seconds, then killed.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

from dcops.commands.role import (add_migrate_argument, load_config, prepare_database, run_in_thread, start_metrics,
                                 watch_thread)
from dcops.secrets import redact
from dcops.roles import ROLES, resolve, unavailable


def add_arguments(p) -> None:
    p.add_argument("-c", "--config", help="site YAML file (required)")
    p.add_argument("--roles", help=f"comma-separated roles to run instead of settings.roles ({', '.join(ROLES)})")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--processes", dest="mode", action="store_const", const="processes",
                      help="one process per role (default with the Kafka bus)")
    mode.add_argument("--threads", dest="mode", action="store_const", const="threads",
                      help="all roles in this process (default, and required, with the in-process bus)")
    p.add_argument("--grace", type=float, default=30.0, help="seconds to let roles stop cleanly")
    add_migrate_argument(p)


class _Child:
    def __init__(self, name: str, argv: list[str]) -> None:
        self.name, self.argv = name, argv
        self.proc: subprocess.Popen | None = None
        self.restarts = 0
        self.next_start = 0.0
        self.delay = 1.0
        self.started_at = 0.0

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv)
        self.started_at = time.monotonic()
        print(f"dcops up: started {self.name} (pid {self.proc.pid})", file=sys.stderr)


def _supervise(children: list[_Child], stop: threading.Event, grace: float) -> int:
    for c in children:
        c.start()
    while not stop.wait(0.5):
        now = time.monotonic()
        for c in children:
            if c.proc is None:
                if now >= c.next_start:
                    c.start()
                continue
            rc = c.proc.poll()
            if rc is None:
                if now - c.started_at > 60:
                    c.delay = 1.0  # ran a while: next crash restarts quickly again
                continue
            c.restarts += 1
            print(f"dcops up: {c.name} exited with {rc}; restarting in {c.delay:.0f}s", file=sys.stderr)
            c.proc, c.next_start = None, now + c.delay
            c.delay = min(c.delay * 2, 60.0)
    running = [c for c in children if c.proc is not None and c.proc.poll() is None]
    for c in running:
        c.proc.terminate()
    deadline = time.monotonic() + grace
    rc = 0
    for c in running:
        try:
            c.proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"dcops up: {c.name} did not stop within {grace:.0f}s; killing it", file=sys.stderr)
            c.proc.kill()
            c.proc.wait()
            rc = 1
    return rc


def _run_threads(names, cfg, stop: threading.Event, grace: float) -> int:
    metrics, server = start_metrics(cfg.settings, "up", roles=names)  # one /metrics for all the roles of this process
    threads = {n: run_in_thread(n, resolve(n), cfg, stop) for n in names}
    for n, t in threads.items():
        watch_thread(metrics, n, t)
    print(f"dcops up: running {', '.join(names)} in this process", file=sys.stderr)
    while not stop.wait(0.5):
        for n, t in threads.items():
            if not t.is_alive():
                print(f"dcops up: role {n} stopped on its own"
                      f"{': ' + redact(repr(t.errors[0])) if t.errors else ''}; stopping the others", file=sys.stderr)
                stop.set()
    rc = 0
    deadline = time.monotonic() + grace
    for n, t in threads.items():
        t.join(max(0.1, deadline - time.monotonic()))
        if t.is_alive() or t.errors:
            rc = 1
    if server is not None:
        server.close()
    return rc


def run(args) -> int:
    cfg = load_config(args.config)
    if cfg is None:
        return 1
    names = [r.strip() for r in args.roles.split(",") if r.strip()] if args.roles else list(cfg.settings.roles)
    unknown = [n for n in names if n not in ROLES]
    if unknown:
        print(f"dcops up: unknown role(s) {', '.join(unknown)} (known: {', '.join(ROLES)})", file=sys.stderr)
        return 2
    missing = unavailable(names)
    if missing:
        print("dcops up: cannot start; these roles are not available:", file=sys.stderr)
        for reason in missing.values():
            print(f"  {reason}", file=sys.stderr)
        return 2
    if not prepare_database(cfg, names, args.config, getattr(args, "migrate", None)):
        return 1
    mode = args.mode or ("processes" if cfg.settings.bus.kind == "kafka" else "threads")
    if mode == "processes" and cfg.settings.bus.kind == "inprocess" and len(names) > 1:
        print("dcops up: the in-process bus cannot connect roles in separate processes; use --threads or"
              " set settings.bus.kind: kafka", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    if mode == "threads":
        return _run_threads(names, cfg, stop, args.grace)
    ms = cfg.settings.metrics  # each child its own metrics port: port, port+1, ... (0: any free)
    children = [_Child(n, [sys.executable, "-m", "dcops.cli", "role", n, "-c", args.config,
                           "--grace", str(args.grace), "--metrics-port", str(ms.port + i if ms.port else 0)])
                for i, n in enumerate(names)]
    return _supervise(children, stop, args.grace)
