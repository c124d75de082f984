"""`dcops demo`: the simulated demo site end to end, until Ctrl-C.

Exit status 0 when the demo ran and stopped cleanly; 1 when it could not start (a bad site config,
the console's port taken) or a thread of it failed or would not stop; 2 for bad options.
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys
import threading
from pathlib import Path

from dcops.data import site_file
from dcops.site import load_site
from dcops.yamlconf import ConfigError

DEFAULT_SITE = site_file("demo-site.yaml")


def port_number(text: str) -> int:
    """argparse type: a TCP port, 1..65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (1..65535)")
    return port


def add_arguments(p) -> None:
    p.add_argument("-c", "--config", default=str(DEFAULT_SITE),
                   help="site YAML (default: the shipped demo site, dcops/data/sites/demo-site.yaml)")
    p.add_argument("--data-dir", default="var/demo", help="where the demo keeps its data (default: var/demo)")
    p.add_argument("--interval", type=float, default=10.0, help="sample interval in seconds (default 10)")
    p.add_argument("--speed", type=float, default=1.0, help="simulated seconds per wall-clock second (default 1)")
    p.add_argument("--seed", type=int, default=1,
                   help="random seed of the simulator (noise, sensor bias); the same seed replays the same site")
    p.add_argument("--host", default="127.0.0.1",
                   help="address the console listens on (default 127.0.0.1; 0.0.0.0 for every interface)")
    p.add_argument("--port", type=port_number, default=8050, help="TCP port of the console (default 8050)")
    p.add_argument("--no-faults", action="store_true",
                   help="start without the pre-scheduled faults (by default a cooling unit, a GPU, an NPU and a"
                        " server PSU of the site fail in the first 30 s)")
    p.add_argument("--no-console", action="store_true", help="run without the web console")
    p.add_argument("--no-history", action="store_true",
                   help="start without the past weeks of incidents (by default generated once per site by running"
                        " the simulator's fault library through the alert rules, then cached under --data-dir)")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds (default: run until Ctrl-C)")


def port_free(host: str, port: int) -> str | None:
    """None when `host:port` can be listened on, else why not."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the console's server does
        try:
            s.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def run(args) -> int:
    from dcops.demo import Demo, DemoOptions

    try:
        cfg = load_site(args.config)
    except ConfigError as exc:
        exc.report(f"{args.config}: configuration refused:")
        return 1
    except OSError as exc:
        print(f"{args.config}: cannot read ({exc.strerror})", file=sys.stderr)
        return 1
    if args.interval <= 0 or args.speed <= 0:
        print("--interval and --speed must be positive", file=sys.stderr)
        return 2
    if not args.no_console:
        why = port_free(args.host, args.port)
        if why is not None:
            print(f"dcops demo: the console cannot listen on {args.host}:{args.port} ({why}); "
                  f"pick another port with --port N, or stop what holds port {args.port}", file=sys.stderr)
            return 1
    opts = DemoOptions(data_dir=Path(args.data_dir), interval_s=args.interval, speed=args.speed, seed=args.seed,
                       host=args.host, port=args.port, faults=() if args.no_faults else None,
                       console=not args.no_console, history=not args.no_history)
    say = lambda s: print(s, flush=True)  # noqa: E731
    demo = Demo(cfg, opts, say=say)
    stop = threading.Event()

    def on_signal(signum, _frame):
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        demo.start()
    except OSError as exc:
        say(f"cannot start: {exc}")
        demo.stop()
        return 1
    say("running; press Ctrl-C to stop")
    waited = 0.0
    while not stop.wait(1.0) and not demo.failures:
        waited += 1.0
        if waited % 30 == 0:
            say(demo.status_line())
        if args.duration is not None and waited >= args.duration:
            break
    say("stopping...")
    left = demo.stop()
    where = Path(args.data_dir).resolve()
    if demo.failures or left:
        for name, exc in demo.failures:
            print(f"dcops demo: thread {name} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        if left:
            print(f"dcops demo: thread(s) did not stop: {', '.join(left)}", file=sys.stderr)
        print(f"dcops demo: stopped with errors; data kept in {where}", file=sys.stderr)
        return 1
    say(f"stopped cleanly; data kept in {where}")
    return 0
