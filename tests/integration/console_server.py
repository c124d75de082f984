"""Serve the console over a site fed with live fake telemetry, for browser tests and bench/console.py.

Run as a subprocess: `python tests/integration/console_server.py --site FILE [--sim] [--refresh 1]`.
Users admin/operator/viewer get the passwords of tests/console/support.py. Prints
`READY <port>` once it listens, then writes a new poll every `--interval` seconds (R1-01's
inlet temperature climbs, so the floor visibly changes) until killed.
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

from console.app import create_app, serve  # noqa: E402
from console.auth import Auth  # noqa: E402
from console.users import UserStore  # noqa: E402
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
    args = ap.parse_args()

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


if __name__ == "__main__":
    sys.exit(main())
