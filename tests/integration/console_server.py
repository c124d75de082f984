"""Serve the console over a site fed with live fake telemetry, for browser tests and bench/console.py.

Run as a subprocess: `python tests/integration/console_server.py --site FILE [--alarms] [--refresh 1]`.
Users admin/operator/viewer get the passwords of tests/console/support.py. Prints
`READY <port>` once it listens, then writes a new poll every `--interval` seconds until killed:
- default: fake polls (tests/console/fake_site.py); the last rack's inlet temperature cycles;
- `--alarms`: the simulator feeds the store and the real alert pipeline (dcops.alerts.pipeline), with
  a CRAC-1 failure and an XID 79 on R2-01-S01:2 injected before serving; the console gets the
  alerts Repository and RunbookEngine.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import sqlalchemy as sa  # noqa: E402

from dcops.console.app import create_app, serve  # noqa: E402
from dcops.console.auth import Auth  # noqa: E402
from dcops.console.users import UserStore  # noqa: E402
from dcops.site import load_site  # noqa: E402
from dcops.store.duckdb_store import DuckDBStore  # noqa: E402
from dcops.topology import build_inventory  # noqa: E402
from tests.console.fake_site import NS, site_batches, xid_event  # noqa: E402
from tests.console.support import PASSWORDS  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--site", required=True)
    ap.add_argument("--refresh", type=float, default=1.0)
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--history", type=int, default=10, help="polls of history written before serving")
    ap.add_argument("--alarms", action="store_true", help="simulator + alert pipeline + runbooks")
    ap.add_argument("--db", default="", help="alerts SQLite file (with --alarms)")
    args = ap.parse_args()
    if args.alarms:
        return serve_with_alarms(args)

    inv = build_inventory(load_site(args.site))
    store = DuckDBStore(":memory:")
    first_rack = inv.racks[0].name
    hot = inv.racks[-1].name
    t0 = time.time_ns() - args.history * 60 * NS
    for k in range(args.history):
        store.write(site_batches(inv, t0 + k * 60 * NS, inlet={first_rack: 33.0}, down=(inv.accel_ids[-1],), seed=k))
    store.write_events([xid_event(inv, inv.accel_ids[-1], t0 + 60 * NS)])
    users = UserStore(sa.create_engine("sqlite://", poolclass=sa.pool.StaticPool,
                                       connect_args={"check_same_thread": False}))
    for role, pw in PASSWORDS.items():
        users.create_user(role, pw, role)
    app = create_app(store, inv, auth=Auth(users, session_ttl_s=3600), refresh_s=args.refresh)
    srv = serve(app, "127.0.0.1", 0)
    threading.Thread(target=srv.run, daemon=True).start()
    print(f"READY {srv.effective_port}", flush=True)
    k = 0
    while True:
        time.sleep(args.interval)
        k += 1
        store.write(site_batches(inv, time.time_ns(), inlet={first_rack: 33.0, hot: 20.0 + (k % 15)},
                                 down=(inv.accel_ids[-1],), seed=k))


def serve_with_alarms(args) -> int:
    import tempfile

    from dcops.alerts.config import AlertingConfig
    from dcops.alerts.storage.tables import open_engine
    from dcops.alerts.storage.alerter_store import AlerterStore
    from dcops.alerts.pipeline import AlertPipeline
    from dcops.alerts.storage.repository import Repository
    from dcops.alerts.rules.engine import default_rules
    from dcops.alerts.runbooks.engine import RunbookEngine
    from dcops.alerts.runbooks.loader import load_runbooks
    from dcops.sim import Simulator

    sim = Simulator(load_site(args.site), seed=1)
    db = args.db or str(Path(tempfile.mkdtemp(prefix="dcops-console-")) / "alerts.sqlite")
    engine = open_engine(f"sqlite:///{db}")
    alerter = AlerterStore(engine)
    pipeline = AlertPipeline(sim.inventory, default_rules(), AlertingConfig(), alerter)
    pipeline.load(sim.now_ns)
    store = DuckDBStore(":memory:")
    lock = threading.Lock()
    cursor = 0

    def steps(n: int) -> None:
        nonlocal cursor
        for _ in range(n):
            with lock:
                sim.step()
                batches = sim.batches()
                store.write(batches)
                for b in batches:
                    pipeline.feed_batch(b)
                events, cursor = sim.events_since(cursor)
                store.write_events(events)
                pipeline.feed_events([e for e in events if e.kind not in ("fault_injected", "fault_cleared")])
                alerter.write(pipeline.reconcile(sim.now_ns))

    steps(args.history)
    sim.inject("crac_failure", "CRAC-1", duration_s=3600)
    sim.inject("gpu_xid79", "R2-01-S01:2")
    steps(20)
    clock = lambda: sim.now_ns / 1e9  # noqa: E731
    repo = Repository(engine, sim.inventory, clock=clock)
    runbooks = RunbookEngine(engine, load_runbooks(), inventory=sim.inventory, store=store, repository=repo,
                             clock=lambda: sim.now_ns)
    runbooks.ensure_schema()
    users = UserStore(sa.create_engine("sqlite://", poolclass=sa.pool.StaticPool,
                                       connect_args={"check_same_thread": False}))
    for role, pw in PASSWORDS.items():
        users.create_user(role, pw, role)
    app = create_app(store, sim.inventory, alarms=repo, runbooks=runbooks, auth=Auth(users, session_ttl_s=3600),
                     refresh_s=args.refresh, clock=clock)
    srv = serve(app, "127.0.0.1", 0)
    threading.Thread(target=srv.run, daemon=True).start()
    print(f"READY {srv.effective_port}", flush=True)
    while True:
        time.sleep(args.interval)
        steps(1)


if __name__ == "__main__":
    sys.exit(main())
