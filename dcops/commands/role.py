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
    p.add_argument("-c", "--config", help="site YAML file (required)")
    p.add_argument("--grace", type=float, default=30.0, help="seconds to let the role stop cleanly")
    p.add_argument("--metrics-port", type=int, default=None,
                   help="serve /metrics and /healthz on this port instead of settings.metrics.port (0: any free)")
    add_migrate_argument(p)


# Roles that open settings.database: before they start, its schema is brought to (or checked at) head.
DATABASE_ROLES = frozenset({"alerter", "console"})


def add_migrate_argument(p) -> None:
    p.add_argument("--migrate", action="store_true", default=None,
                   help="upgrade the database schema at start when it is behind (default: only a SQLite file;"
                        " a server database that is behind is refused: run `dcops db upgrade`)")


def prepare_database(cfg, names, config_path: str, migrate: bool | None) -> bool:
    """Upgrade or check the schema of `settings.database.url` when one of `names` uses it; False after
    saying why a role cannot start (the schema is behind, the database cannot be reached)."""
    if not DATABASE_ROLES & set(names):
        return True
    from sqlalchemy.exc import SQLAlchemyError

    from dcops.dbschema import SchemaBehind, prepare

    try:
        st = prepare(cfg.settings.database.url, migrate=migrate, hint=f"dcops db upgrade -c {config_path}")
    except SchemaBehind as exc:
        print(f"dcops: cannot start {', '.join(sorted(DATABASE_ROLES & set(names)))}: {exc}", file=sys.stderr)
        return False
    except SQLAlchemyError as exc:
        print(redact(f"dcops: cannot open the database: {type(exc).__name__}: {exc}"), file=sys.stderr)
        return False
    log.info("database %s at schema revision %s", st.url, st.current)
    return True


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


def load_config(path: str | None):
    """The site config, or None after printing its problems (file, line, field)."""
    if not path:
        print("dcops: -c/--config SITE.yaml is required", file=sys.stderr)
        return None
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
    if not prepare_database(cfg, (args.name,), args.config, getattr(args, "migrate", None)):
        return 1
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
