"""Robust streaming univariate detection: spikes, level shifts and stuck sensors, online.

State per series is a robust location (EW median tracker) and scale (EW mean absolute
deviation), updated after each value is scored, so scoring is causal. Updates are winsorised
(a value counts at most `clip` scales away), so an anomaly moves the baseline only slowly and a
level shift keeps scoring for a while instead of being absorbed at once.

A stuck sensor is a normally noisy series that repeats its last value exactly: `stuck_`
counts consecutive repeats, and it only counts for series whose history shows they change
(`change_rate_`, the EW share of samples that differ from the one before).

`StreamState` is the vectorised bank the fleet scorer keeps (arrays of shape (series,
features)); `RobustStreamingDetector` is the same math as a scikit-learn estimator over one
multivariate stream (rows are time steps).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sklearn.utils.validation import check_is_fitted, validate_data

from dcops.analytics.detectors.base import OutlierDetector

__all__ = ["StreamState", "RobustStreamingDetector"]


@dataclass
class StreamState:
    loc: np.ndarray
    scale: np.ndarray
    last: np.ndarray
    stuck: np.ndarray
    change_rate: np.ndarray
    n: np.ndarray

    @classmethod
    def from_history(cls, H: np.ndarray, min_scale: np.ndarray | float) -> "StreamState":
        """H: (time, series, features) history, NaN where missing."""
        H = np.asarray(H, dtype=np.float64)
        with np.errstate(all="ignore"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                loc = np.nanmedian(H, axis=0)
                scale = 1.2533 * np.nanmean(np.abs(H - loc), axis=0)  # MAD-mean -> sd for normal noise
                d = np.diff(H, axis=0)
                change = np.nanmean((d != 0).astype(float) + np.where(np.isnan(d), np.nan, 0), axis=0)
        scale = np.maximum(np.nan_to_num(scale, nan=0.0), min_scale)
        n = np.sum(~np.isnan(H), axis=0).astype(np.float64)
        last = H[-1].copy() if len(H) else np.full(loc.shape, np.nan)
        return cls(np.nan_to_num(loc, nan=0.0), scale, last, np.zeros(loc.shape), np.nan_to_num(change, nan=0.0), n)

    @classmethod
    def empty(cls, shape, min_scale) -> "StreamState":
        z = np.zeros(shape)
        return cls(z.copy(), np.broadcast_to(np.asarray(min_scale, float), shape).copy(), np.full(shape, np.nan),
                   z.copy(), z.copy(), z.copy())

    def z(self, x: np.ndarray) -> np.ndarray:
        """Robust |z| of each value against the state (NaN where x or the state is missing)."""
        return np.abs(x - self.loc) / self.scale

    def update(self, x: np.ndarray, alpha: float, clip: float, min_scale, warmup: int) -> None:
        ok = ~np.isnan(x)
        n = self.n
        a = np.where(n < warmup, 1.0 / (n + 1.0), alpha)  # plain averages while warming up
        dev = np.clip(x - self.loc, -clip * self.scale, clip * self.scale)
        new_loc = np.where(n == 0, x, self.loc + a * dev)
        new_scale = np.where(n == 0, self.scale, np.maximum((1 - a) * self.scale + a * 1.2533 * np.abs(dev), min_scale))
        same = ok & (x == self.last)
        self.stuck = np.where(ok, np.where(same, self.stuck + 1, 0), self.stuck)
        changed = np.where(same, 0.0, 1.0)
        self.change_rate = np.where(ok & ~np.isnan(self.last), (1 - a) * self.change_rate + a * changed, self.change_rate)
        self.loc = np.where(ok, new_loc, self.loc)
        self.scale = np.where(ok, new_scale, self.scale)
        self.last = np.where(ok, x, self.last)
        self.n = n + ok


class RobustStreamingDetector(OutlierDetector):
    """Online robust z-score detector over one multivariate stream (rows = time steps).

    `fit(X)` sets the baseline from history; `score_samples(X)` scores rows against the fitted
    baseline (stateless); `score_stream(X)` scores each row causally and then learns it, as the
    streaming scorer does, adding `stuck_z` for values repeated `stuck_after` times by a series
    that normally changes.
    """

    def __init__(self, alpha=0.01, clip=3.0, min_scale=1e-3, warmup=30, stuck_after=2, stuck_z=12.0,
                 contamination=0.01):
        self.alpha = alpha
        self.clip = clip
        self.min_scale = min_scale
        self.warmup = warmup
        self.stuck_after = stuck_after
        self.stuck_z = stuck_z
        self.contamination = contamination

    def _fit(self, X):
        self.state_ = StreamState.from_history(X[:, None, :], self.min_scale)
        self.location_ = self.state_.loc[0].copy()
        self.scale_ = self.state_.scale[0].copy()

    def _z(self, X):
        return np.max(np.abs(X - self.location_) / self.scale_, axis=1)

    def partial_fit(self, X, y=None):
        """Learn rows in order (online). Starts from scratch when not fitted yet."""
        if not hasattr(self, "state_"):
            return self.fit(X)
        X = validate_data(self, X, reset=False, dtype=np.float64, ensure_all_finite="allow-nan")
        self.score_stream(X)
        return self

    def score_stream(self, X) -> np.ndarray:
        """Causal per-row abnormality (robust z, max over features); learns each row after scoring it."""
        check_is_fitted(self)
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        out = np.empty(len(X))
        st = self.state_
        for i, row in enumerate(X):
            x = row[None, :]
            z = np.nan_to_num(st.z(x), nan=0.0)
            stuck = (st.stuck + (x == st.last) >= self.stuck_after) & (st.change_rate > 0.5)
            out[i] = float(np.max(np.where(stuck, np.maximum(z, self.stuck_z), z)))
            st.update(x, self.alpha, self.clip, self.min_scale, self.warmup)
        self.location_, self.scale_ = st.loc[0].copy(), st.scale[0].copy()
        return out
