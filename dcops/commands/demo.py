"""`dcops demo`: the simulated demo site end to end, until Ctrl-C."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

from dcops.site import load_site
from dcops.yamlconf import ConfigError

DEFAULT_SITE = Path(__file__).resolve().parents[2] / "examples" / "demo-site.yaml"


def add_arguments(p) -> None:
    p.add_argument("-c", "--config", default=str(DEFAULT_SITE), help="site YAML (default: the shipped demo site)")
    p.add_argument("--data-dir", default="var/demo", help="where the demo keeps its data (default: var/demo)")
    p.add_argument("--interval", type=float, default=10.0, help="sample interval in seconds (default 10)")
    p.add_argument("--speed", type=float, default=1.0, help="simulated seconds per wall-clock second (default 1)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8050)
    p.add_argument("--no-faults", action="store_true", help="start without the pre-scheduled faults")
    p.add_argument("--no-console", action="store_true", help="run without the web console")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds (default: run until Ctrl-C)")


def run(args) -> int:
    from dcops.demo import DEFAULT_FAULTS, Demo, DemoOptions

    try:
        cfg = load_site(args.config)
    except ConfigError as exc:
        exc.report(f"{args.config}: configuration refused:")
        return 1
    if args.interval <= 0 or args.speed <= 0:
        print("--interval and --speed must be positive", file=sys.stderr)
        return 2
    opts = DemoOptions(data_dir=Path(args.data_dir), interval_s=args.interval, speed=args.speed, seed=args.seed,
                       host=args.host, port=args.port, faults=() if args.no_faults else DEFAULT_FAULTS,
                       console=not args.no_console)
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
    while not stop.wait(1.0):
        waited += 1.0
        if waited % 30 == 0:
            say(demo.status_line())
        if args.duration is not None and waited >= args.duration:
            break
    say("stopping...")
    demo.stop()
    say(f"stopped cleanly; data kept in {Path(args.data_dir).resolve()}")
    return 0
