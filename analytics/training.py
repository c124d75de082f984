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
from typing import Callable, Iterable, Sequence

import numpy as np

from dcops.analytics.detectors import CounterTrendDetector, FeatureIsolationForest, PeerGroupDetector, ThermalResidualModel
from dcops.analytics.features import ACCEL_COUNTERS, ACCEL_MODEL_FEATURES, WINDOW_FEATURE_NAMES
from dcops.analytics.fleet import PEER_FEATURES, peer_min_scale
from dcops.analytics.models import FORMAT_VERSION, ModelBundle, ModelMetadata
from dcops.analytics.tracker import INLET_INPUTS, THERMAL_INPUTS, FeatureTracker, peer_groups
from dcops.batch import Batch
from dcops.topology import Inventory

__all__ = ["train_bundle", "intervals_from_store", "train_from_store", "RetrainScheduler", "TrainingError"]

log = logging.getLogger(__name__)
MAX_ROWS = 20_000  # per model: more rows add fitting time, not accuracy
INLET_MIN_SCALE = 0.25  # degC: rack inlet probes are good to a few tenths


class TrainingError(RuntimeError):
    """Not enough usable history to train; the message says what was missing."""


def _sample(rng, X, n=MAX_ROWS):
    return X if len(X) <= n else X[rng.choice(len(X), n, replace=False)]


def train_bundle(inventory: Inventory, intervals: Iterable[Sequence[Batch]], window: int = 30,
                 previous: ModelBundle | None = None, seed: int = 0, now_ns: int | None = None) -> ModelBundle:
    """Fit every trainable detector on a replay of `intervals` (each one interval's batches)."""
    rng = np.random.default_rng(seed)
    tracker = FeatureTracker(inventory, window)
    models = np.asarray(inventory.accel_tags["model"], dtype=object)
    groups = peer_groups(inventory)
    peer_cols = [ACCEL_MODEL_FEATURES.index(f) for f in PEER_FEATURES]
    win_rows, thermal_rows, counter_rows, peer_rows, peer_groups_, rack_rows = [], [], [], [], [], []
    times = []
    for k, batches in enumerate(intervals):
        f = tracker.observe(batches)
        times.append(f.time_ns)
        thermal_rows.append(f.thermal)
        rack_rows.append(f.rack_thermal)
        if k > 0:
            counter_rows.append(f.counter_delta)
        if k >= window:
            win_rows.append(f.window)
        if k % 5 == 0:
            peer_rows.append(f.accel[:, peer_cols])
            peer_groups_.append(np.char.add(groups.astype(str), f"@{k}"))
    if len(times) < window + 10:
        raise TrainingError(f"need at least {window + 10} intervals of history to train, got {len(times)}")
    thermal = np.stack(thermal_rows)  # (time, accel, cols)
    windows = np.stack(win_rows)
    iso, iso_cols, thermal_models, rows, drift = {}, {}, {}, {}, {}
    for model in np.unique(models):
        sel = models == model
        T = thermal[:, sel].reshape(-1, thermal.shape[-1])
        T = _sample(rng, T[~np.isnan(T).any(axis=1)])
        if len(T) >= 50:
            thermal_models[model] = ThermalResidualModel().fit(T)
            rows[f"thermal:{model}"] = len(T)
        W = windows[:, sel].reshape(-1, windows.shape[-1])
        cols = [j for j in range(W.shape[1]) if not np.isnan(W[:, j]).all()]
        W = W[:, cols]
        W = _sample(rng, W[~np.isnan(W).any(axis=1)])
        if len(W) >= 50:
            iso[model] = FeatureIsolationForest(random_state=seed).fit(W)
            iso_cols[model] = cols
            rows[f"isolation_forest:{model}"] = len(W)
        if previous is not None:
            drift.update(_drift(model, previous, thermal_models.get(model), iso.get(model), iso_cols.get(model)))
    inlet, offsets = _fit_inlet(tracker, np.stack(rack_rows), rows)
    P = np.concatenate(peer_rows)
    peer = PeerGroupDetector(min_scale=peer_min_scale()).fit(P, groups=np.concatenate(peer_groups_))
    counters = CounterTrendDetector().fit(np.concatenate(counter_rows))
    rows.update(peer=len(P), counter_trend=sum(len(c) for c in counter_rows))
    meta = ModelMetadata(
        FORMAT_VERSION, (previous.metadata.model_version + 1) if previous else 1, int(now_ns or time.time_ns()),
        int(min(times)), int(max(times)), len(times),
        {"isolation_forest": list(WINDOW_FEATURE_NAMES), "thermal_residual": list(THERMAL_INPUTS) + ["accel_temp_degc"],
         "peer_group": list(PEER_FEATURES), "counter_trend": list(ACCEL_COUNTERS),
         "inlet_residual": list(INLET_INPUTS) + ["rack_inlet_temp_degc"]},
        rows, drift)
    for key, shift in drift.items():
        if shift > 3.0:
            log.warning("baseline drift: %s moved %.1f spreads since model version %d", key, shift,
                        previous.metadata.model_version)
    return ModelBundle(meta, iso, iso_cols, thermal_models, peer, counters, inlet, offsets)


def _fit_inlet(tracker: FeatureTracker, R: np.ndarray, rows: dict):
    """Rack inlet temperature per cooling zone: [rack power, zone IT power] -> inlet minus the
    rack's usual inlet (racks at a row's end or beside hot neighbours run warmer by design)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        usual = np.nanmedian(R[:, :, -1], axis=0)
    offsets = {name: float(u) for name, u in zip(tracker.rack_index, usual) if np.isfinite(u)}
    models = {}
    for zone in np.unique(tracker.rack_zone):
        sel = tracker.rack_zone == zone
        X = R[:, sel].copy()
        X[:, :, -1] -= usual[sel]
        X = X.reshape(-1, X.shape[-1])
        X = X[~np.isnan(X).any(axis=1)]
        if len(X) >= 50:
            name = tracker.zone_names[zone]
            models[name] = ThermalResidualModel(min_scale=INLET_MIN_SCALE).fit(X)
            rows[f"inlet:{name}"] = len(X)
    return models, offsets


def _drift(model, previous: ModelBundle, thermal, forest, cols) -> dict[str, float]:
    out = {}
    old_t = previous.thermal.get(model)
    if old_t is not None and thermal is not None:
        probe = np.array([[300.0, 25.0, 0.0]])  # a typical operating point
        out[f"thermal:{model}"] = round(float(abs(thermal.expected(probe)[0] - old_t.expected(probe)[0])
                                              / old_t.residual_scale_), 3)
    old_f = previous.isolation.get(model)
    if old_f is not None and forest is not None and previous.isolation_columns.get(model) == cols:
        out[f"isolation_forest:{model}"] = round(float(np.max(np.abs(forest.center_ - old_f.center_) / old_f.feature_scale_)), 3)
    return out


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
