"""Multivariate detection per device type: IsolationForest over standardised feature windows."""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import IsolationForest

from analytics.detectors.base import OutlierDetector

__all__ = ["FeatureIsolationForest"]


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
        raw = -self.forest_.score_samples(self._std(X))
        self.raw_median_ = float(np.median(raw))
        spread = float(np.median(np.abs(raw - self.raw_median_))) * 1.4826
        self.raw_scale_ = spread if spread > 1e-9 else 1.0

    def _std(self, X):
        return (X - self.center_) / self.feature_scale_

    def _z(self, X):
        raw = -self.forest_.score_samples(self._std(X))
        return np.maximum(raw - self.raw_median_, 0.0) / self.raw_scale_

    def feature_deviation(self, X) -> np.ndarray:
        """Per-feature robust z of each row: the explanation of a multivariate score."""
        return np.abs(self._std(np.asarray(X, dtype=np.float64)))
