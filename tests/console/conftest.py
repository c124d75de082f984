"""Fixtures for the console: a small site in an in-memory store, users of each role, the app."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from console.app import create_app
from console.auth import Auth
from console.users import UserStore
from dcops.store.duckdb_store import DuckDBStore
from tests.console.fake_site import NS, site_batches, xid_event

from tests.console.support import PASSWORDS


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
                                   connect_args={"check_same_thread": False}))
    for role, pw in PASSWORDS.items():
        u.create_user(role, pw, role)
    return u


@pytest.fixture
def app(filled_store, small_inventory, users):
    return create_app(filled_store, small_inventory, auth=Auth(users, session_ttl_s=3600), refresh_s=2.0)
