from __future__ import annotations

import pytest

from dcops.alerts.config import AlertingConfig, alerting_from_text
from dcops.alerts.storage.tables import open_engine
from dcops.alerts.storage.alerter_store import AlerterStore
from dcops.alerts.pipeline import AlertPipeline
from dcops.alerts.storage.repository import Repository
from dcops.alerts.rules.engine import default_rules
from tests.alerts.helpers import GROUND_TRUTH


class SimRun:
    """The simulator feeding an AlertPipeline directly (no bus), one reconcile per step."""

    def __init__(self, sim, db_url: str, cfg: AlertingConfig | None = None) -> None:
        self.sim = sim
        self.store = AlerterStore(open_engine(db_url))
        self.pipeline = AlertPipeline(sim.inventory, default_rules(), cfg or AlertingConfig(), self.store)
        self.pipeline.load(sim.now_ns)
        self.repo = Repository(self.store.engine, sim.inventory, clock=lambda: self.sim.now_ns / 1e9)
        self.cursor = 0

    def steps(self, n: int) -> None:
        for _ in range(n):
            self.sim.step()
            for b in self.sim.batches():
                self.pipeline.feed_batch(b)
            events, self.cursor = self.sim.events_since(self.cursor)
            self.pipeline.feed_events([e for e in events if e.kind not in GROUND_TRUTH])
            self.store.write(self.pipeline.reconcile(self.sim.now_ns))


SIM_START_NS = 1_796_565_600 * 1_000_000_000  # 2026-12-06 14:00 UTC


@pytest.fixture
def sim_run(small_site, tmp_path):
    from dcops.sim import Simulator

    def make(seed: int = 0, cfg_text: str | None = None) -> SimRun:
        cfg = alerting_from_text(cfg_text) if cfg_text else None
        # a fixed start: the simulator's load follows the time of day, and a test must not
        # depend on the hour it runs at
        return SimRun(Simulator(small_site, seed=seed, start_ns=SIM_START_NS), f"sqlite:///{tmp_path}/alerts-{seed}.sqlite",
                      cfg)
    return make
