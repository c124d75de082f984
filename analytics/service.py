"""The analytics stage as a service: the streaming scorer plus model loading and retraining.

    Analytics(bus, store, inventory).run(stop_event)      # in a thread (the demo)
    run_role(cfg, stop_event)                             # the `analytics` role of `dcops up`

At start the model file is loaded when it exists (`dcops train` writes it). Without one, the
detectors that need no training score at once, and the first training runs from the store as
soon as `first_training_s` of history has been scored; after that, every `retrain_every_s`
(APScheduler). New models are swapped in between intervals.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Callable

from dcops.analytics.fleet import ScorerParams
from dcops.analytics.models import ModelBundle, ModelFileError
from dcops.analytics.scorer import RackScope, StreamingScorer
from dcops.analytics.training import RetrainScheduler
from dcops.topology import Inventory

__all__ = ["Analytics", "run_role", "DEFAULT_MODEL_PATH"]

log = logging.getLogger(__name__)
DEFAULT_MODEL_PATH = Path("var/models/analytics.joblib")


class Analytics:
    def __init__(self, bus, store, inventory: Inventory, model_path: Path = DEFAULT_MODEL_PATH,
                 interval_s: float = 10.0, params: ScorerParams = ScorerParams(),
                 first_training_s: float = 900.0, retrain_every_s: float = 24 * 3600.0,
                 history_s: float = 24 * 3600.0, clock: Callable[[], int] = time.time_ns) -> None:
        self.inventory = inventory
        self.model_path = Path(model_path)
        models = None
        if self.model_path.exists():
            try:
                models = ModelBundle.load(self.model_path)
                log.info("loaded model version %d from %s", models.metadata.model_version, self.model_path)
            except ModelFileError as exc:
                log.error("%s; scoring with untrained detectors until retraining succeeds", exc)
        # each member of the `analytics` group scores the racks of the partitions it holds (all of
        # them on the in-process bus); retraining covers the whole site, models are keyed by name
        self.scorer = StreamingScorer(bus, None, interval_s=interval_s, scope=RackScope(inventory, models, params))
        self.first_training_s = first_training_s
        self.retrain = RetrainScheduler(store, inventory, self.model_path, self.scorer.set_models,
                                        every_s=retrain_every_s, history_s=history_s, current=models, clock=clock)
        self.interval_s = interval_s
        self._trained_first = models is not None

    def _maybe_first_training(self) -> None:
        if self._trained_first:
            return
        if self.scorer.stats.intervals * self.interval_s >= self.first_training_s:
            self._trained_first = self.retrain.retrain_once() is not None or self._retry_later()

    def _retry_later(self) -> bool:
        self.first_training_s += self.first_training_s  # back off: try again after as much history again
        return False

    def run(self, stop: threading.Event) -> None:
        self.retrain.start()
        try:
            while not stop.is_set():
                try:
                    self.scorer.run_once()
                    self._maybe_first_training()
                except Exception:
                    log.exception("analytics step failed; retrying")
                    stop.wait(1.0)
            self.scorer.flush()
        finally:
            self.retrain.stop()
            self.scorer.close()


def run_role(cfg, stop: threading.Event) -> None:
    """The `analytics` role of `dcops up`: score the samples topic until `stop`."""
    from dcops.topology import build_inventory
    from dcops.wiring import open_bus, open_store

    settings = cfg.settings
    bus = open_bus(settings.bus, client_id="analytics")
    store = open_store(settings.store)
    try:
        Analytics(bus, store, build_inventory(cfg), interval_s=settings.interval_s).run(stop)
    finally:
        bus.close()
        store.close()
