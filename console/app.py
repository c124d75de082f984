"""The console's Dash app: `create_app(...)` builds it, `run_role(cfg, stop_event)` serves it.

Pages live one module each under `console/pages/` (Dash Pages); each registers itself, has a
`layout` function and only its own callbacks. They read through `dcops.console.data` with the
`Context` kept in the Flask app's config, so several apps can live in one process (tests).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Callable

import dash
import dash_bootstrap_components as dbc
import flask
from dash import ClientsideFunction, Input, Output, State, dcc, html

from dcops.console.auth import Auth, current_user
from dcops.console.data import CONFIG_KEY, Context, current

__all__ = ["create_app", "serve", "run_role", "connect_alerts", "PAGES_DIR"]

log = logging.getLogger("dcops.console")
PAGES_DIR = Path(__file__).resolve().parent / "pages"
ASSETS_DIR = Path(__file__).resolve().parent / "assets"


def _nav(user, has_alarms: bool) -> list:
    """Links to the pages this user may open, in page order (alarm pages only with alarms)."""
    links = []
    for page in sorted(dash.page_registry.values(), key=lambda p: p.get("order") or 0):
        if not page.get("nav", True):
            continue
        if user is None or not user.can(page.get("min_role", "viewer")):
            continue
        if page.get("needs_alarms") and not has_alarms:
            continue
        links.append(dbc.NavItem(dbc.NavLink(page["name"], href=page["relative_path"], active="exact",
                                             id=f"shell-nav-{page['module'].rsplit('.', 1)[-1]}")))
    return links


def _shell_layout(refresh_s: float) -> Callable[[], html.Div]:
    def layout():
        user = current_user()
        who = [html.Span(f"{user.name} ({user.role})", id="shell-user", className="text-light me-3")] if user else []
        logout = html.Form([html.Button("Sign out", type="submit", id="shell-logout",
                                        className="btn btn-sm btn-outline-light")],
                           action="/logout", method="POST", className="d-inline")
        bar = dbc.Navbar(dbc.Container([
            dbc.NavbarBrand("dcops NOC", href="/"),
            dbc.Nav(_nav(user, flask.has_request_context() and current().alarms is not None), navbar=True,
                    className="me-auto"),
            html.Div([*who, logout], className="d-flex align-items-center"),
        ], fluid=True), color="dark", dark=True, className="mb-3", id="shell-bar")
        return html.Div([
            dcc.Location(id="shell-url"),
            bar,
            # the clock ticks every refresh period; pages listen to shell-tick, which assets/live.js
            # advances only when no callback request is in flight (back-pressure under load)
            dcc.Interval(id="shell-clock", interval=int(refresh_s * 1000), n_intervals=0),
            dcc.Store(id="shell-tick", data=0),
            dbc.Container(dash.page_container, fluid=True, id="shell-main"),
        ])

    return layout


def _ensure_dash_context() -> None:
    """Dash gives its callback-context variable a value only in the thread that imported dash;
    `register_page` reads it, so building the app in another thread (a `dcops up` role) fails
    with LookupError unless this thread's context has a value too (plotly/dash#2266, open).
    Dash has no public setter: `dash.ctx` / `dash.callback_context` only read that variable,
    and raise the same LookupError outside a callback, so the private module is the one way."""
    from dash._callback_context import context_value

    try:
        context_value.get()
    except LookupError:
        context_value.set({})


def create_app(store, inventory, *, alarms=None, runbooks=None, alerting=None, auth: Auth, refresh_s: float = 5.0,
               energy_price_per_kwh: float | None = None, clock: Callable[[], float] = time.time,
               title: str = "dcops NOC") -> dash.Dash:
    """Build the console over a Store, an Inventory and (optionally) the alerts stage's
    `Repository` (`alarms`: Alarms, Incidents, History pages, floor alarm colouring) and
    `RunbookEngine` (`runbooks`: runbook panel on an incident) and the alerting config
    (`alerting`: receivers, routes and on-call shown read-only on the Admin page).

    `auth` is required: every page and callback is behind its login guard.
    """
    if auth is None:
        raise ValueError("create_app needs an Auth: the console never runs without login")
    price = energy_price_per_kwh if energy_price_per_kwh is not None else inventory.config.energy_price_per_kwh
    _ensure_dash_context()
    server = flask.Flask(__package__)  # "dcops.console": Dash names the pages dcops.console.pages.*
    server.config[CONFIG_KEY] = Context(store, inventory, alarms, float(refresh_s), float(price), clock,
                                        runbooks=runbooks, alerting=alerting)
    auth.install(server)
    app = dash.Dash(
        __package__, server=server, use_pages=True, pages_folder=str(PAGES_DIR), title=title, update_title=None,
        assets_folder=str(ASSETS_DIR), suppress_callback_exceptions=True,  # assets: vendored Bootstrap CSS
        serve_locally=True, compress=False,
    )
    app.layout = _shell_layout(float(refresh_s))
    app.clientside_callback(ClientsideFunction("dcops", "tick"), Output("shell-tick", "data"),
                            Input("shell-clock", "n_intervals"), State("shell-tick", "data"),
                            prevent_initial_call=True)  # pages render once on load, then tick
    # wall screens (/wallboard) get the page alone: no navigation bar, no margins
    app.clientside_callback(
        "function(path){const wall = path === '/wallboard';"
        " return [wall ? {display: 'none'} : {}, wall ? 'p-0' : ''];}",
        Output("shell-bar", "style"), Output("shell-main", "className"), Input("shell-url", "pathname"))
    # Bind the page callbacks (registered by `dash.callback` while Dash imported the pages) to
    # this app now, so another app built later in the same process (tests, benchmarks) cannot
    # take them. Dash binds them in a `before_request` hook on its first request; run the hooks
    # of a first request here, for the login page (the one path the login guard lets through).
    with server.test_request_context("/login"):
        server.preprocess_request()
    return app


class ConsoleServer:
    """A waitress server for the app: `.run()` in a thread, `.close()` from another to stop.

    Waitress's loop selects on its sockets while `close()` closes them from the caller's thread,
    so the loop can wake on a closed descriptor (EBADF, or a negative fd) and raise: once a close
    was asked for, that is the loop ending, not an error."""

    def __init__(self, app: dash.Dash, host: str, port: int, threads: int = 8) -> None:
        from waitress import create_server

        self._server = create_server(app.server, host=host, port=port, threads=threads, ident="dcops")
        self._closing = threading.Event()
        self.effective_port = self._server.effective_port

    def run(self) -> None:
        try:
            self._server.run()
        except (OSError, ValueError):
            if not self._closing.is_set():
                raise

    def close(self) -> None:
        self._closing.set()
        self._server.close()


def serve(app: dash.Dash, host: str, port: int, threads: int = 8) -> ConsoleServer:
    """A waitress server for the app (call `.run()` in a thread and `.close()` to stop)."""
    return ConsoleServer(app, host, port, threads)


def connect_alerts(db_url: str, inventory, store, audit=None, create_tables: bool = True):
    """The alerts stage's Repository and RunbookEngine on the incident database, or (None, None)
    when the alerts package cannot be used (the console then runs without its alarm pages).
    `audit` (an AuditLog): every operator action and runbook step is also appended to it.
    `create_tables`: False in the running console, whose schema Alembic made (dcops.dbschema)."""
    try:
        from dcops.alerts.storage.tables import open_engine
        from dcops.alerts.storage.repository import Repository
        from dcops.alerts.runbooks.engine import RunbookEngine
        from dcops.alerts.runbooks.loader import load_runbooks
    except ImportError as e:  # pragma: no cover - alerts ships with dcops
        log.warning("alarm pages off: %s", e)
        return None, None
    engine = open_engine(db_url, create_tables=create_tables)
    repo = Repository(engine, inventory, audit=audit)
    runbooks = RunbookEngine(engine, load_runbooks(), inventory=inventory, store=store, repository=repo, audit=audit)
    if create_tables:
        runbooks.ensure_schema()
    return repo, runbooks


def run_role(cfg, stop_event: threading.Event) -> int:
    """The `console` role of `dcops up`: serve the console of the site `cfg` until stop_event."""
    from dcops.console.users import UserStore
    from dcops.store import open_store
    from dcops.topology import build_inventory

    from dcops.ingest import follow_view

    settings = cfg.settings
    store = open_store(settings.store)
    following = follow_view(settings, store, "console")  # on Kafka the bus keeps the current view, not the store
    inventory = build_inventory(cfg)
    from dcops.alerts.storage.audit import AnchorKeeper, open_audit_log
    from dcops.alerts.storage.tables import open_engine
    from dcops.dbschema import prepare

    prepare(settings.database.url)  # Alembic's schema: SQLite upgraded here, a server database must be at head
    # the console's state changes (operator actions, runbook steps, logins, account changes) all
    # go to the keyed audit chain of the incident database, anchored outside it
    audit = open_audit_log(open_engine(settings.database.url, create_tables=False), settings.database,
                           ensure_schema=False)
    anchors = AnchorKeeper(audit, settings.database.audit_anchor_interval_s, source="console").start()
    users = UserStore.from_url(settings.database.url, audit=audit)
    if not users.list_users():
        log.warning("no console users in %s; add one with `dcops console-user add NAME --role admin -c SITE`",
                    users.where)
    repo, runbooks = connect_alerts(settings.database.url, inventory, store, audit=audit, create_tables=False)
    from dcops.alerts.config import load_alerting

    alerting = load_alerting(os.environ.get("DCOPS_ALERTING_CONFIG") or None)  # the alerter's file, shown read-only
    auth = Auth(users, session_ttl_s=settings.console.session_ttl_s, cookie_secure=settings.console.cookie_secure,
                audit_log=audit)
    app = create_app(store, inventory, alarms=repo, runbooks=runbooks, alerting=alerting, auth=auth,
                     refresh_s=settings.console.refresh_s, energy_price_per_kwh=cfg.energy_price_per_kwh)
    srv = serve(app, settings.console.host, settings.console.port)
    thread = threading.Thread(target=srv.run, name="console-http", daemon=True)
    thread.start()
    log.info("console at http://%s:%d/", settings.console.host, settings.console.port)
    try:
        stop_event.wait()
    finally:
        srv.close()
        thread.join(timeout=5)
        anchors.stop()
        if following is not None:
            follower, follower_thread, follower_bus = following
            follower.stop()
            follower_thread.join(timeout=5)
            follower_bus.close()
        store.close()
    return 0
