"""Shared simulated history for the analytics tests (trained once per session)."""

from __future__ import annotations

import pytest

from dcops.analytics.training import train_bundle
from dcops.sim import Simulator

START_NS = 1_700_000_000 * 10**9


@pytest.fixture(scope="session")
def sim_history(small_site):
    sim = Simulator(small_site, seed=3, start_ns=START_NS)
    history = []
    for _ in range(150):
        sim.step()
        history.append(sim.batches())
    return sim, history


@pytest.fixture(scope="session")
def trained(sim_history):
    sim, history = sim_history
    return train_bundle(sim.inventory, history, window=30, seed=0, now_ns=START_NS)
