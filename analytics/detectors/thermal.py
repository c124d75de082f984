"""Thermal residual model: expected temperature from power, load and cooling state.

`X` holds the inputs followed by the observed temperature (column `target_index`, default the
last). `fit` learns a linear model (least squares with an intercept, then refitted without the
worst `trim` share of rows, so a few hot rows in the history do not bend it) and the spread of
its residuals. The abnormality is the residual in spreads, positive side only by default: a
device running hotter than its power, load and inlet explain is what cooling degradation
(a failed fan, a clogged filter, a dried heatsink) looks like before any threshold trips. The
streaming scorer smooths it over a few intervals so only persistent residuals raise findings.
"""

from __future__ import annotations

import numpy as np

from dcops.analytics.detectors.base import OutlierDetector

__all__ = ["ThermalResidualModel"]


class ThermalResidualModel(OutlierDetector):
    def __init__(self, target_index=-1, min_scale=0.6, two_sided=False, trim=0.05, contamination=0.01):
        self.target_index = target_index
        self.min_scale = min_scale
        self.two_sided = two_sided
        self.trim = trim
        self.contamination = contamination

    def _split(self, X):
        t = self.target_index % X.shape[1]
        return np.delete(X, t, axis=1), X[:, t]

    def _design(self, inputs):
        return np.column_stack([np.ones(len(inputs)), inputs])

    def _fit(self, X):
        if X.shape[1] < 2:
            raise ValueError(f"ThermalResidualModel needs input columns and a target column; got {X.shape[1]} feature(s)")
        inputs, y = self._split(X)
        A = self._design(inputs)
        coef = np.linalg.lstsq(A, y, rcond=None)[0]
        if self.trim > 0 and len(y) > 20:
            r = np.abs(y - A @ coef)
            keep = r <= np.quantile(r, 1.0 - self.trim)
            coef = np.linalg.lstsq(A[keep], y[keep], rcond=None)[0]
        self.intercept_, self.coef_ = float(coef[0]), coef[1:].copy()
        res = y - A @ coef
        self.residual_scale_ = max(float(np.median(np.abs(res - np.median(res)))) * 1.4826, self.min_scale)

    def expected(self, X) -> np.ndarray:
        """Expected target for each row of X (inputs and target, as in fit)."""
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self)
        inputs, _ = self._split(np.asarray(X, dtype=np.float64))
        return self.intercept_ + inputs @ self.coef_

    def residual_z(self, X) -> np.ndarray:
        """Signed residual (observed - expected) in residual spreads."""
        X = np.asarray(X, dtype=np.float64)
        _, y = self._split(X)
        return (y - self.expected(X)) / self.residual_scale_

    def _z(self, X):
        r = self.residual_z(X)
        return np.abs(r) if self.two_sided else np.maximum(r, 0.0)
