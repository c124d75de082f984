"""The outlier-detector contract every detector here follows (scikit-learn's).

`score_samples(X)`: higher is more normal; `decision_function(X) = score_samples(X) - offset_`
(negative = outlier); `predict(X)` gives +1 inlier / -1 outlier; `offset_` is set in `fit` so
that a `contamination` share of the training rows fall below it. Parameters are only stored in
`__init__`; fitted attributes end in `_`.

`z_to_score` maps a robust z (how many scales away from expected) to the 0..1 finding score:
0.5 at `z_alarm`, 0.75 at twice that, approaching 1.
"""

from __future__ import annotations

from numbers import Real

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted, validate_data

__all__ = ["OutlierDetector", "z_to_score"]


def z_to_score(z, z_alarm: float) -> np.ndarray:
    z = np.maximum(np.nan_to_num(np.asarray(z, dtype=np.float64), nan=0.0), 0.0)
    return 1.0 - np.power(0.5, z / float(z_alarm))


class OutlierDetector(OutlierMixin, BaseEstimator):
    """Shared predict side. Subclasses implement `_fit(X)` and `_z(X)` (abnormality, >= 0)."""

    _parameter_constraints: dict = {
        "contamination": [Interval(Real, 0.0, 0.5, closed="right")],
    }

    def fit(self, X, y=None):
        X = validate_data(self, X, reset=True, dtype=np.float64, ensure_all_finite=self._finite)
        self._fit(X)
        self.offset_ = float(np.quantile(-self._z(X), self.contamination))
        return self

    def score_samples(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64, ensure_all_finite=self._finite)
        return -self._z(X)

    def decision_function(self, X):
        return self.score_samples(X) - self.offset_

    def predict(self, X):
        return np.where(self.decision_function(X) < 0, -1, 1)

    # NaN means "not reported" for telemetry; detectors that can score around it say so.
    _finite = True

    def _fit(self, X):  # pragma: no cover - abstract
        raise TypeError(f"{type(self).__name__} must implement _fit")

    def _z(self, X):  # pragma: no cover - abstract
        raise TypeError(f"{type(self).__name__} must implement _z")
