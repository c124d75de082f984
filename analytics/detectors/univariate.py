"""Robust streaming univariate detection: spikes, level shifts and stuck sensors, online.

State per series is a robust location (EW median tracker) and scale (EW mean absolute
deviation), updated after each value is scored, so scoring is causal. Updates are winsorised
(a value counts at most `clip` scales away), so an anomaly moves the baseline only slowly and a
level shift keeps scoring for a while instead of being absorbed at once.

A stuck sensor repeats its last value when it should have moved. Real collectors quantise
(NVML and rbln-stat report whole degrees, SNMP probes tenths), so repeats are normal for a
quiet signal; a run of repeats is suspicious only when a run that long is improbable for this
sensor: `repeat_p` is the larger of (a) what its own history says, from the mean length of its
completed runs of repeats, and (b) what its movement says, the chance that a change of the
size it usually shows (`move`, EW mean |step|) stays inside one quantisation step (`quantum`,
the smallest non-zero step seen). A run of k repeats is called stuck when `repeat_p ** k`
falls below `stuck_p` (default 1e-9: a fleet has about 10^8 sensor-intervals a day). A signal
that never moved by more than its step (a flat reading in whole degrees) is never "stuck".

`StreamState` is the vectorised bank the fleet scorer keeps (arrays of shape (series,
features)); `RobustStreamingDetector` is the same math as a scikit-learn estimator over one
multivariate stream (rows are time steps).
"""

from __future__ import annotations

from dataclasses import dataclass

import warnings

import numpy as np

from sklearn.utils.validation import check_is_fitted, validate_data

from dcops.analytics.detectors.base import OutlierDetector

__all__ = ["StreamState", "RobustStreamingDetector"]


@dataclass
class StreamState:
    loc: np.ndarray
    scale: np.ndarray
    last: np.ndarray
    stuck: np.ndarray          # current run of exact repeats
    change_rate: np.ndarray    # EW share of samples that differ from the one before
    n: np.ndarray
    mean_run: np.ndarray | None = None   # EW mean length of completed runs of repeats
    move: np.ndarray | None = None       # EW mean |step| (frozen inside a run)
    quantum: np.ndarray | None = None    # smallest non-zero |step| seen (inf: never moved)
    long_run: np.ndarray | None = None   # longest completed run of repeats (slowly forgotten)

    def __post_init__(self) -> None:
        shape = np.shape(self.loc)
        if self.mean_run is None:
            self.mean_run = np.zeros(shape)
        if self.move is None:
            self.move = np.zeros(shape)
        if self.quantum is None:
            self.quantum = np.full(shape, np.inf)
        if self.long_run is None:
            self.long_run = np.zeros(shape)

    def repeat_p(self) -> np.ndarray:
        """Chance of one more exact repeat for a healthy sensor (see the module docstring)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            from_runs = self.mean_run / (1.0 + self.mean_run)
            from_move = np.where(np.isfinite(self.quantum), self.quantum / (2.5 * 1.2533 * np.maximum(self.move, 1e-12)), 1.0)
        return np.clip(np.maximum(from_runs, from_move), 1e-6, 1.0)

    def stuck_mask(self, x: np.ndarray, stuck_p: float = 1e-9, min_run: int = 1) -> np.ndarray:
        """True where x repeats the last value for a run that this sensor makes improbable."""
        p = self.repeat_p()
        with np.errstate(divide="ignore", invalid="ignore"):
            need = np.where(p < 1.0, np.ceil(np.log(stuck_p) / np.log(np.minimum(p, 1 - 1e-12))), np.inf)
        run = self.stuck + 1
        need = np.maximum(np.maximum(need, min_run), 2 * self.long_run + 1)  # longer than any healthy run, twice over
        return ~np.isnan(x) & (x == self.last) & np.isfinite(self.quantum) & (run >= need)

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
        state = cls(np.nan_to_num(loc, nan=0.0), scale, last, np.zeros(loc.shape), np.nan_to_num(change, nan=0.0), n)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ad = np.abs(d) if len(H) > 1 else np.full((1,) + loc.shape, np.nan)
            state.move = np.nan_to_num(np.nanmean(ad, axis=0), nan=0.0)
            nz = np.where(ad > 0, ad, np.nan)
            state.quantum = np.where(np.isnan(np.nanmin(nz, axis=0)), np.inf, np.nanmin(nz, axis=0)) \
                if np.any(~np.isnan(nz)) else np.full(loc.shape, np.inf)
            state.mean_run, state.long_run = _runs(H)
        return state

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
        step = np.abs(x - self.last)
        seen = ok & ~np.isnan(self.last)
        moved = seen & (step > 0)
        a0 = np.where(n < warmup, 1.0 / (n + 1.0), alpha)
        # a run that ends counts its length; inside a run the usual movement is not forgotten
        self.mean_run = np.where(moved, (1 - a0) * self.mean_run + a0 * self.stuck, self.mean_run)
        self.move = np.where(seen & ((self.stuck == 0) | moved), (1 - a0) * self.move + a0 * np.nan_to_num(step), self.move)
        self.quantum = np.where(moved, np.minimum(self.quantum, np.nan_to_num(step, nan=np.inf)), self.quantum)
        self.long_run = np.where(moved, np.maximum(self.long_run * (1 - a0 / 10), self.stuck), self.long_run)
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


def _runs(H: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and longest length of the completed runs of exact repeats in a (time, ...) history."""
    shape = H.shape[1:]
    if len(H) < 2:
        return np.zeros(shape), np.zeros(shape)
    d = np.diff(H, axis=0)
    same = d == 0
    changes = np.sum(~same & ~np.isnan(d), axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(changes > 0, np.sum(same, axis=0) / np.maximum(changes, 1), 0.0)
    longest = np.zeros(shape)
    run = np.zeros(shape)
    for row in same:  # history is short (a training window); one pass
        longest = np.where(~row, np.maximum(longest, run), longest)
        run = np.where(row, run + 1, 0)
    return mean, longest


class RobustStreamingDetector(OutlierDetector):
    """Online robust z-score detector over one multivariate stream (rows = time steps).

    `fit(X)` sets the baseline from history; `score_samples(X)` scores rows against the fitted
    baseline (stateless); `score_stream(X)` scores each row causally and then learns it, as the
    streaming scorer does, adding `stuck_z` for a run of repeats that this series' history and
    quantisation make improbable (`stuck_p`, at least `stuck_after` repeats).
    """

    def __init__(self, alpha=0.01, clip=3.0, min_scale=1e-3, warmup=30, stuck_after=1, stuck_z=12.0,
                 stuck_p=1e-9, contamination=0.01):
        self.alpha = alpha
        self.clip = clip
        self.min_scale = min_scale
        self.warmup = warmup
        self.stuck_after = stuck_after
        self.stuck_z = stuck_z
        self.stuck_p = stuck_p
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
            stuck = st.stuck_mask(x, self.stuck_p, self.stuck_after)
            out[i] = float(np.max(np.where(stuck, np.maximum(z, self.stuck_z), z)))
            st.update(x, self.alpha, self.clip, self.min_scale, self.warmup)
        self.location_, self.scale_ = st.loc[0].copy(), st.scale[0].copy()
        return out
