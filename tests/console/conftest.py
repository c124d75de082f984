"""Fixtures for the console: a small site in an in-memory store, users of each role, the app."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher

from dcops.console.app import create_app
from dcops.console.auth import Auth
from dcops.console.users import UserStore
from dcops.store.duckdb_store import DuckDBStore
from tests.console.fake_site import NS, site_batches, xid_event

from tests.console.support import PASSWORDS

# argon2id at a low cost: the tests log in dozens of times (production uses argon2-cffi's default).
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture
def filled_store(small_inventory):
    store = DuckDBStore(":memory:")
    t0 = time.time_ns() - 600 * NS
    for k in range(0, 601, 60):  # ten minutes of history, one poll a minute
        store.write(site_batches(small_inventory, t0 + k * NS, inlet={"R1-01": 33.0},
                                 down=("R2-01-S01:0",), throttled=("R1-02-S01:1",), seed=k))
    store.write_events([xid_event(small_inventory, "R2-01-S01:0", t0 + 300 * NS)])
    yield store
    store.close()


@pytest.fixture
def users():
    u = UserStore(sa.create_engine("sqlite://", poolclass=sa.pool.StaticPool,
                                   connect_args={"check_same_thread": False}), hasher=FAST_HASHER)
    for role, pw in PASSWORDS.items():
        u.create_user(role, pw, role)
    return u


@pytest.fixture
def app(filled_store, small_inventory, users):
    return create_app(filled_store, small_inventory, auth=Auth(users, session_ttl_s=3600), refresh_s=2.0)


GROUND_TRUTH = ("fault_injected", "fault_cleared")


@pytest.fixture(scope="session")
def alarm_world(small_site, tmp_path_factory):
    """The simulator on the small site feeding the alert pipeline and a telemetry store: a CRAC
    failure (one incident, the CRAC the root) and an XID 79. Built once; tests copy its database."""
    from dcops.alerts.config import AlertingConfig
    from dcops.alerts.storage.tables import open_engine
    from dcops.alerts.storage.alerter_store import AlerterStore
    from dcops.alerts.pipeline import AlertPipeline
    from dcops.alerts.rules.engine import default_rules
    from dcops.sim import Simulator

    path = tmp_path_factory.mktemp("alarms") / "alerts.sqlite"
    sim = Simulator(small_site, seed=1)
    alerter = AlerterStore(open_engine(f"sqlite:///{path}"))
    pipeline = AlertPipeline(sim.inventory, default_rules(), AlertingConfig(), alerter)
    pipeline.load(sim.now_ns)
    store = DuckDBStore(":memory:")
    cursor = 0

    def steps(n):
        nonlocal cursor
        for _ in range(n):
            sim.step()
            batches = sim.batches()
            store.write(batches)
            for b in batches:
                pipeline.feed_batch(b)
            events, cursor = sim.events_since(cursor)
            store.write_events(events)
            pipeline.feed_events([e for e in events if e.kind not in GROUND_TRUTH])
            alerter.write(pipeline.reconcile(sim.now_ns))

    steps(10)
    sim.inject("crac_failure", "CRAC-1", duration_s=3600)
    sim.inject("gpu_xid79", "R2-01-S01:2")
    steps(30)
    alerter.engine.dispose()
    return {"db": path, "store": store, "inventory": sim.inventory, "now_s": sim.now_ns / 1e9}


@pytest.fixture
def alarm_app(alarm_world, users, tmp_path):
    """The console over a fresh copy of the alarm world's database, with its repository and runbooks."""
    import shutil

    from dcops.alerts.storage.tables import open_engine
    from dcops.alerts.storage.repository import Repository
    from dcops.alerts.runbooks.engine import RunbookEngine
    from dcops.alerts.runbooks.loader import load_runbooks

    db = tmp_path / "alerts.sqlite"
    shutil.copy(alarm_world["db"], db)
    engine = open_engine(f"sqlite:///{db}")
    now = [alarm_world["now_s"]]
    repo = Repository(engine, alarm_world["inventory"], clock=lambda: now[0])
    runbooks = RunbookEngine(engine, load_runbooks(), inventory=alarm_world["inventory"], store=alarm_world["store"],
                             repository=repo, clock=lambda: int(now[0] * 1e9))
    runbooks.ensure_schema()
    app = create_app(alarm_world["store"], alarm_world["inventory"], alarms=repo, runbooks=runbooks,
                     auth=Auth(users, session_ttl_s=3600), refresh_s=2.0, clock=lambda: now[0])
    yield app
    engine.dispose()
