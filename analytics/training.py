"""Training from the store's history, saving with metadata, and retraining on a schedule.

History is replayed interval by interval through the scorer's own `FeatureTracker`, so the
models learn exactly the features they will score. Baseline drift is handled three ways: the
univariate baselines adapt online (EW updates); retraining fits on a sliding recent window
(`history_s`), so a fleet whose normal changes (new firmware, a hotter season) gets a new
normal within a day; and each new model version records how far its baselines moved from the
previous version (`ModelMetadata.drift`, in units of the old spread), which is logged, so a
large jump is visible rather than silently learned.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from dcops.analytics.detectors.spec import DetectorSpec, TrainingSetup
from dcops.analytics.features import ACCEL_COUNTERS, ACCEL_MODEL_FEATURES
from dcops.analytics.fleet import DETECTORS
from dcops.analytics.models import FORMAT_VERSION, ModelBundle, ModelMetadata
from dcops.analytics.tracker import FeatureTracker
from dcops.batch import Batch
from dcops.topology import Inventory

__all__ = ["train_bundle", "intervals_from_store", "train_from_store", "RetrainScheduler", "TrainingError"]

log = logging.getLogger(__name__)


class TrainingError(RuntimeError):
    """Not enough usable history to train; the message says what was missing."""


def train_bundle(inventory: Inventory, intervals: Iterable[Sequence[Batch]], window: int = 30,
                 previous: ModelBundle | None = None, seed: int = 0, now_ns: int | None = None,
                 detectors: Mapping[str, DetectorSpec] | None = None) -> ModelBundle:
    """Fit every trainable detector of `detectors` (default: the fleet's) on one replay of
    `intervals` (each one interval's batches)."""
    detectors = DETECTORS if detectors is None else detectors
    tracker = FeatureTracker(inventory, window)
    setup = TrainingSetup(inventory, tracker, window, seed)
    trainers = {name: spec.trainer(setup) for name, spec in detectors.items() if spec.trainer is not None}
    times = []
    for k, batches in enumerate(intervals):
        f = tracker.observe(batches)
        times.append(f.time_ns)
        for trainer in trainers.values():
            trainer.observe(k, f)
    if len(times) < window + 10:
        raise TrainingError(f"need at least {window + 10} intervals of history to train, got {len(times)}")
    states, rows, drift = {}, {}, {}
    for name, trainer in trainers.items():
        fitted = trainer.fit(previous.models.get(name) if previous is not None else None)
        states[name] = fitted.state
        rows.update(fitted.rows)
        drift.update(fitted.drift)
    meta = ModelMetadata(
        FORMAT_VERSION, (previous.metadata.model_version + 1) if previous else 1, int(now_ns or time.time_ns()),
        int(min(times)), int(max(times)), len(times), {name: list(detectors[name].features) for name in trainers},
        rows, drift)
    for key, shift in drift.items():
        if shift > 3.0:
            log.warning("baseline drift: %s moved %.1f spreads since model version %d", key, shift,
                        previous.metadata.model_version)
    return ModelBundle(meta, states)


def intervals_from_store(store, start_ns: int, end_ns: int) -> list[list[Batch]]:
    """The accelerator and server rows in [start, end) as one list of batches per interval."""
    accel = store.query_range("accel", list(ACCEL_MODEL_FEATURES) + list(ACCEL_COUNTERS), start_ns, end_ns)
    server = store.query_range("server", ["server_inlet_temp_degc"], start_ns, end_ns)
    out = []
    for t in np.unique(accel.time_ns):
        parts = [accel.select(accel.time_ns == t)]
        s = server.time_ns == t
        if s.any():
            parts.append(server.select(s))
        out.append(parts)
    return out


def train_from_store(store, inventory: Inventory, history_s: float, now_ns: int | None = None,
                     previous: ModelBundle | None = None, window: int = 30) -> ModelBundle:
    now_ns = int(now_ns or time.time_ns())
    intervals = intervals_from_store(store, now_ns - int(history_s * 1e9), now_ns)
    return train_bundle(inventory, intervals, window=window, previous=previous, now_ns=now_ns)


class RetrainScheduler:
    """Retrains from the store every `every_s` on an APScheduler background job.

    Each run trains on the last `history_s`, saves to `model_path` (atomically) and hands the
    new bundle to `on_model` (the scorer swaps it in between intervals). A failed run is logged
    and the previous model keeps scoring.
    """

    def __init__(self, store, inventory: Inventory, model_path: Path, on_model: Callable[[ModelBundle], None],
                 every_s: float = 24 * 3600.0, history_s: float = 24 * 3600.0,
                 current: ModelBundle | None = None, clock: Callable[[], int] = time.time_ns) -> None:
        self.store, self.inventory, self.model_path = store, inventory, Path(model_path)
        self.on_model, self.every_s, self.history_s = on_model, every_s, history_s
        self.current, self.clock = current, clock
        self.runs = 0
        self.failures = 0
        self._scheduler = None

    def retrain_once(self) -> ModelBundle | None:
        try:
            bundle = train_from_store(self.store, self.inventory, self.history_s, self.clock(), self.current)
        except Exception as exc:  # keep scoring with the old model; say why
            self.failures += 1
            log.error("retraining failed, keeping model version %s: %s",
                      self.current.metadata.model_version if self.current else None, exc)
            return None
        bundle.save(self.model_path)
        self.current = bundle
        self.runs += 1
        self.on_model(bundle)
        log.info("model version %d trained on %d intervals", bundle.metadata.model_version, bundle.metadata.intervals)
        return bundle

    def start(self) -> None:
        from apscheduler.schedulers.background import BackgroundScheduler

        self._scheduler = BackgroundScheduler(daemon=True)
        self._scheduler.add_job(self.retrain_once, "interval", seconds=self.every_s, id="dcops-retrain",
                                max_instances=1, coalesce=True)
        self._scheduler.start()

    def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
