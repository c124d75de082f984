"""Multivariate detection per device type: IsolationForest over standardised feature windows.

Small batches are scored by walking all trees at once with numpy (the trees flattened into one
node table), which gives scikit-learn's `IsolationForest.score_samples` exactly (a test checks
it) without its per-tree call overhead (about 0.25 ms a tree, which dominates for a few dozen
rows); large batches go through scikit-learn, which is faster there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from sklearn.ensemble import IsolationForest

from dcops.analytics.detectors.base import OutlierDetector
from dcops.analytics.detectors.spec import (
    DetectorSpec, Fitted, TrainedPart, TrainingSetup, rows_by_model, sample_rows,
)
from dcops.analytics.features import WINDOW_FEATURE_NAMES

if TYPE_CHECKING:
    from dcops.analytics.fleet import FleetScorer
    from dcops.analytics.tracker import IntervalFeatures
    from dcops.findings import Finding

__all__ = ["FeatureIsolationForest", "ModelForest", "ISOLATION_FOREST"]

FLAT_BELOW = 2000  # rows: below this the flattened walk is faster than scikit-learn's per-tree loop


class FeatureIsolationForest(OutlierDetector):
    """IsolationForest on robustly standardised features; abnormality is the forest's depth deficit.

    The scorer keeps one per accelerator model (device type), fitted on windows of temperature,
    power, clocks, utilisation and fan speed. `z` is rescaled so that the training rows' spread
    is 1, which makes one alarm level work across device types.
    """

    def __init__(self, n_estimators=50, max_samples=256, contamination=0.01, random_state=0):
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.contamination = contamination
        self.random_state = random_state

    def _fit(self, X):
        self.center_ = np.median(X, axis=0)
        scale = np.median(np.abs(X - self.center_), axis=0) * 1.4826
        self.feature_scale_ = np.where(scale > 1e-9, scale, 1.0)
        self.forest_ = IsolationForest(n_estimators=self.n_estimators, max_samples=min(self.max_samples, len(X)),
                                       random_state=self.random_state).fit(self._std(X))
        self.flat_ = _flatten(self.forest_)
        raw = -_flat_score_samples(self.flat_, self._std(X))
        self.raw_median_ = float(np.median(raw))
        spread = float(np.median(np.abs(raw - self.raw_median_))) * 1.4826
        self.raw_scale_ = spread if spread > 1e-9 else 1.0

    def _std(self, X):
        return (X - self.center_) / self.feature_scale_

    def _z(self, X):
        S = self._std(X)
        raw = -(_flat_score_samples(self.flat_, S) if len(S) < FLAT_BELOW else self.forest_.score_samples(S))
        return np.maximum(raw - self.raw_median_, 0.0) / self.raw_scale_

    def feature_deviation(self, X) -> np.ndarray:
        """Per-feature robust z of each row: the explanation of a multivariate score."""
        return np.abs(self._std(np.asarray(X, dtype=np.float64)))


@dataclass
class ModelForest:
    """One accelerator model's forest and the columns of `WINDOW_FEATURE_NAMES` it was fitted on
    (a model without HBM or fans reports no such column)."""

    forest: FeatureIsolationForest
    columns: list[int]


def _flatten(forest: IsolationForest) -> dict:
    """All trees in one node table: feature, threshold, children (global ids), leaf path value."""
    from sklearn.ensemble._iforest import _average_path_length

    if forest._max_features != forest.n_features_in_:
        raise ValueError("flattened scoring needs max_features=1.0")
    feats, thr, left, right, value, roots = [], [], [], [], [], []
    base = 0
    for est in forest.estimators_:
        t = est.tree_
        n = t.node_count
        roots.append(base)
        leaf = t.children_left == -1
        feats.append(np.where(leaf, 0, t.feature))
        thr.append(t.threshold)
        left.append(np.where(leaf, np.arange(n), t.children_left) + base)
        right.append(np.where(leaf, np.arange(n), t.children_right) + base)
        value.append(t.compute_node_depths() + _average_path_length(t.n_node_samples) - 1.0)
        base += n
    return {
        "feature": np.concatenate(feats).astype(np.intp), "threshold": np.concatenate(thr),
        "left": np.concatenate(left).astype(np.intp), "right": np.concatenate(right).astype(np.intp),
        "value": np.concatenate(value), "roots": np.asarray(roots, dtype=np.intp),
        "max_depth": max(int(e.tree_.max_depth) for e in forest.estimators_),
        "denominator": len(forest.estimators_) * float(_average_path_length([forest._max_samples])[0]),
    }


def _flat_score_samples(flat: dict, X: np.ndarray) -> np.ndarray:
    """IsolationForest.score_samples over the flattened forest (trees compare in float32)."""
    X32 = np.asarray(X, dtype=np.float32).astype(np.float64)
    n = len(X32)
    node = np.broadcast_to(flat["roots"], (n, len(flat["roots"]))).copy()
    rows = np.arange(n)[:, None]
    for _ in range(flat["max_depth"]):
        go_left = X32[rows, flat["feature"][node]] <= flat["threshold"][node]
        node = np.where(go_left, flat["left"][node], flat["right"][node])
    depths = flat["value"][node].sum(axis=1)
    d = flat["denominator"]
    return -(2.0 ** (-depths / d)) if d else -np.ones(n)


# ----- in the fleet ---------------------------------------------------------------------------
class _ForestPart(TrainedPart):
    """Each accelerator's window features against its model's forest, once the windows are full;
    the score is shared out over the features by their robust deviation."""

    def __init__(self, fleet: FleetScorer, state: dict[str, ModelForest] | None) -> None:
        super().__init__(fleet, state)
        self.by_model = rows_by_model(fleet.inventory)

    def score_trained(self, f: IntervalFeatures, state: dict[str, ModelForest]) -> list[Finding]:
        fleet = self.fleet
        ids = fleet.tracker.ids["accel"]
        z = np.zeros((len(ids), len(WINDOW_FEATURE_NAMES)))
        expected = np.full(z.shape, np.nan)
        for model, rows in self.by_model:
            mf = state.get(model)
            if mf is not None and fleet.intervals >= fleet.params.window:
                cols = mf.columns
                W = f.window[rows][:, cols]
                ok = ~np.isnan(W).any(axis=1)
                if ok.any():
                    total = np.maximum(-mf.forest.score_samples(W[ok]), 0.0)
                    dev = mf.forest.feature_deviation(W[ok])
                    share = dev / np.maximum(dev.sum(axis=1, keepdims=True), 1e-9)
                    sub = np.zeros((ok.sum(), len(WINDOW_FEATURE_NAMES)))
                    sub[:, cols] = share * total[:, None]
                    z[rows[ok]] = sub
                    exp = np.full(sub.shape, np.nan)
                    exp[:, cols] = mf.forest.center_
                    expected[rows[ok]] = exp
        return fleet.emit(f.time_ns, ids, "isolation_forest", z, WINDOW_FEATURE_NAMES, f.window, expected,
                          fleet.params.isolation_z, total=z.sum(axis=1))


class _ForestTrainer:
    def __init__(self, setup: TrainingSetup) -> None:
        self.by_model, self.rng = rows_by_model(setup.inventory), setup.rng()
        self.window, self.seed = setup.window, setup.seed
        self.windows: list[np.ndarray] = []

    def observe(self, k: int, f: IntervalFeatures) -> None:
        if k >= self.window:  # full windows only
            self.windows.append(f.window)

    def fit(self, previous: dict[str, ModelForest] | None) -> Fitted:
        windows = np.stack(self.windows)
        models, rows, drift = {}, {}, {}
        for model, sel in self.by_model:
            W = windows[:, sel].reshape(-1, windows.shape[-1])
            cols = [j for j in range(W.shape[1]) if not np.isnan(W[:, j]).all()]
            W = W[:, cols]
            W = sample_rows(self.rng, W[~np.isnan(W).any(axis=1)])
            if len(W) >= 50:
                models[model] = ModelForest(FeatureIsolationForest(random_state=self.seed).fit(W), cols)
                rows[f"isolation_forest:{model}"] = len(W)
            old = (previous or {}).get(model)
            if old is not None and model in models and old.columns == cols:
                new = models[model].forest
                shift = np.max(np.abs(new.center_ - old.forest.center_) / old.forest.feature_scale_)
                drift[f"isolation_forest:{model}"] = round(float(shift), 3)
        return Fitted(models, rows, drift)


ISOLATION_FOREST = DetectorSpec(
    "isolation_forest", FeatureIsolationForest, "each accelerator's window features against its model's forest",
    WINDOW_FEATURE_NAMES, _ForestPart, _ForestTrainer, dict)
