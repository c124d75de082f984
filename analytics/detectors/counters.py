"""Error-counter trends: ECC, remapped rows, PCIe replays, NVLink errors.

`X` holds counter increments over one window (rows are devices or time steps, columns are
counters). `fit` learns each counter's normal increments per window. The abnormality of an
increment `k` is the normal quantile of its Poisson tail probability P(N >= k | rate): a
counter that creeps at its usual pace scores low, a burst scores high, and a counter that
never moved in the history scores `zero_rate_z` on its first move (an uncorrectable ECC error
or a row remap is news whatever the count).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import stats

from dcops.analytics.detectors.base import OutlierDetector
from dcops.analytics.detectors.spec import DetectorSpec, Fitted, TrainingSetup
from dcops.analytics.features import ACCEL_COUNTERS

if TYPE_CHECKING:
    from dcops.analytics.fleet import FleetScorer
    from dcops.analytics.tracker import IntervalFeatures
    from dcops.findings import Finding

__all__ = ["CounterTrendDetector", "COUNTER_TREND"]


class CounterTrendDetector(OutlierDetector):
    def __init__(self, zero_rate_z=10.0, max_z=20.0, contamination=0.01):
        self.zero_rate_z = zero_rate_z
        self.max_z = max_z
        self.contamination = contamination

    def _fit(self, X):
        self.rate_ = np.maximum(np.mean(np.maximum(X, 0.0), axis=0), 0.0)

    def feature_z(self, X) -> np.ndarray:
        X = np.maximum(np.nan_to_num(np.asarray(X, dtype=np.float64), nan=0.0), 0.0)
        k = np.ceil(X)
        rate = np.broadcast_to(self.rate_, X.shape)
        with np.errstate(divide="ignore"):
            sf = stats.poisson.sf(k - 1, np.maximum(rate, 1e-300))  # P(N >= k)
            z = np.where(k > 0, -stats.norm.ppf(np.clip(sf, 1e-300, 0.5)), 0.0)
        z = np.where((rate <= 0) & (k > 0), self.zero_rate_z, z)
        return np.minimum(np.maximum(z, 0.0), self.max_z)

    def _z(self, X):
        return self.feature_z(X).max(axis=1) if X.shape[1] else np.zeros(len(X))


# ----- in the fleet ---------------------------------------------------------------------------
class _CounterPart:
    """Each accelerator's error-counter increments this interval against their normal rate
    (untrained: every counter's rate is 0, so any increment is news)."""

    def __init__(self, fleet: FleetScorer, state: CounterTrendDetector | None) -> None:
        self.fleet = fleet
        self.det = state if state is not None else CounterTrendDetector().fit(np.zeros((2, len(ACCEL_COUNTERS))))

    def set_model(self, state: CounterTrendDetector | None) -> None:
        if state is not None:
            self.det = state

    def score(self, f: IntervalFeatures) -> list[Finding]:
        cz = self.det.feature_z(f.counter_delta)
        return self.fleet.emit(f.time_ns, self.fleet.tracker.ids["accel"], "counter_trend", cz, ACCEL_COUNTERS,
                               f.counter_delta, np.broadcast_to(self.det.rate_, cz.shape), self.fleet.params.counter_z)


class _CounterTrainer:
    def __init__(self, setup: TrainingSetup) -> None:
        self.deltas: list[np.ndarray] = []

    def observe(self, k: int, f: IntervalFeatures) -> None:
        if k > 0:  # the first interval has no increments
            self.deltas.append(f.counter_delta)

    def fit(self, previous) -> Fitted:
        det = CounterTrendDetector().fit(np.concatenate(self.deltas))
        return Fitted(det, {"counter_trend": sum(len(d) for d in self.deltas)})


COUNTER_TREND = DetectorSpec(
    "counter_trend", CounterTrendDetector, "accelerator error-counter increments against their normal rate",
    ACCEL_COUNTERS, _CounterPart, _CounterTrainer, CounterTrendDetector)
