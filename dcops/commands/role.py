"""`dcops role NAME -c site.yaml`: run one role in this process until Ctrl-C or SIGTERM."""

from __future__ import annotations

import logging
import signal
import sys
import threading

from dcops.metrics import Check, Metrics, install, serve
from dcops.roles import ROLES, RoleUnavailable, resolve
from dcops.secrets import redact
from dcops.site import load_site
from dcops.yamlconf import ConfigError

log = logging.getLogger(__name__)


def add_arguments(p) -> None:
    p.add_argument("name", choices=list(ROLES), help="the role to run")
    p.add_argument("-c", "--config", required=True, help="site YAML file")
    p.add_argument("--grace", type=float, default=30.0, help="seconds to let the role stop cleanly")
    p.add_argument("--metrics-port", type=int, default=None,
                   help="serve /metrics and /healthz on this port instead of settings.metrics.port (0: any free)")


def start_metrics(settings, role: str, port: int | None = None, roles=None):
    """Install this process's `Metrics` (with the instruments of `roles`, default `role`) and serve them per
    `settings.metrics`: (metrics, server or None)."""
    metrics = install(Metrics(role=role))
    metrics.register_roles(roles or (role,))
    ms = settings.metrics
    if not ms.enabled:
        return metrics, None
    server = serve(metrics, ms.host, ms.port if port is None else port)
    if server is not None:
        print(f"dcops {role}: metrics at {server.url}/metrics, health at {server.url}/healthz", file=sys.stderr)
    return metrics, server


def watch_thread(metrics, name: str, t: threading.Thread) -> None:
    """A /healthz check that fails once the role's thread has stopped or failed."""
    def check() -> Check:
        if t.errors:
            return Check(False, redact(f"failed: {t.errors[0]!r}"))
        return Check(t.is_alive(), "running" if t.is_alive() else "stopped")

    metrics.health.add(f"role:{name}", check)


def load_config(path: str):
    """The site config, or None after printing its problems (file, line, field)."""
    try:
        return load_site(path)
    except ConfigError as exc:
        exc.report(f"{path}: {len(exc.problems)} problem(s)")
    except OSError as exc:
        print(f"{path}: cannot read ({exc.strerror})", file=sys.stderr)
    return None


def run_in_thread(name: str, fn, cfg, stop: threading.Event) -> threading.Thread:
    errors: list[BaseException] = []

    def target():
        try:
            fn(cfg, stop)
        except BaseException as exc:  # reported by the caller through the thread's `errors`
            errors.append(exc)
            log.exception("role %s failed", name)

    t = threading.Thread(target=target, name=f"role-{name}", daemon=True)
    t.errors = errors
    t.start()
    return t


def run(args) -> int:
    cfg = load_config(args.config)
    if cfg is None:
        return 1
    try:
        fn = resolve(args.name)
    except RoleUnavailable as exc:
        print(f"dcops role: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    metrics, server = start_metrics(cfg.settings, args.name, getattr(args, "metrics_port", None))
    try:
        t = run_in_thread(args.name, fn, cfg, stop)
        watch_thread(metrics, args.name, t)
        return _wait(args, t, stop)
    finally:
        if server is not None:
            server.close()


def _wait(args, t: threading.Thread, stop: threading.Event) -> int:
    while t.is_alive() and not stop.is_set():
        t.join(0.5)
    if t.is_alive():
        t.join(args.grace)
        if t.is_alive():
            print(f"dcops role {args.name}: did not stop within {args.grace:.0f}s", file=sys.stderr)
            return 1
    if t.errors:
        print(redact(f"dcops role {args.name}: failed: {t.errors[0]!r}"), file=sys.stderr)
        return 1
    if not stop.is_set():
        print(f"dcops role {args.name}: returned before it was asked to stop", file=sys.stderr)
        return 1
    return 0
