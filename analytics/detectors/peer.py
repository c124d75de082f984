"""Peer-group detection: a device against its peers at the same moment.

Peers are devices of the same model in the same rack (or row): they share inlet air, load
balancer and firmware, so what one device's own history cannot tell (is 84 degC hot at this
hour, under this load?) its peers can. Each feature's deviation from the group median is
measured in the larger of the group's spread (MAD) and a floor learned in `fit` (the typical
peer spread in history), so a quiet group does not turn noise into alarms. Groups smaller than
`min_group` are compared with all rows instead. Without `groups`, rows are compared with the
population seen in `fit` (its median and spread), so each row's score stands on its own.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted, validate_data

from dcops.analytics.detectors.base import OutlierDetector

__all__ = ["PeerGroupDetector", "PeerOffsets", "group_median_mad"]


def _nanmedian(X: np.ndarray, axis: int = 0) -> np.ndarray:
    """np.nanmedian without the "All-NaN slice" warning: an all-NaN column is NaN (a group or
    a feature with no reading this interval is normal: a dark rack, an NPU without HBM)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(X, axis=axis)


class PeerOffsets:
    """Each unit's own usual offset from its peers' median, learned online.

    Real units differ by a fixed amount (a sensor with a bias, a GPU at the end of a row that
    always runs 3 degC warmer): comparing raw values with the peer median would flag them for
    ever. The offset is an exponentially weighted mean of (value - peer median), learned only
    from deviations that are not abnormal (under `learn_z` spreads), so a fault is not absorbed
    into the baseline; during the first `warmup` intervals it is a plain mean and nothing is
    flagged. `z(dev, scale)` is the deviation beyond the unit's own offset, in spreads."""

    def __init__(self, shape, alpha: float = 0.01, warmup: int = 20, learn_z: float = 3.0) -> None:
        self.offset = np.zeros(shape)
        self.n = np.zeros(shape)
        self.alpha, self.warmup, self.learn_z = alpha, warmup, learn_z

    def z(self, dev: np.ndarray, scale: np.ndarray) -> np.ndarray:
        z = np.nan_to_num(np.abs(dev - self.offset) / scale, nan=0.0)
        return np.where(self.n >= self.warmup, z, 0.0)

    def update(self, dev: np.ndarray, z: np.ndarray) -> None:
        ok = ~np.isnan(dev) & ((self.n < self.warmup) | (z < self.learn_z))
        a = np.where(self.n < self.warmup, 1.0 / (self.n + 1.0), self.alpha)
        self.offset = np.where(ok, self.offset + a * (np.nan_to_num(dev) - self.offset), self.offset)
        self.n = self.n + ok


def group_median_mad(X: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-row group median and MAD of each column, and the group sizes (NaN ignored)."""
    frame = pd.DataFrame(X)
    g = frame.groupby(codes, sort=False)
    med = np.array(g.transform("median").to_numpy(), dtype=np.float64)
    mad = np.array(pd.DataFrame(np.abs(X - med)).groupby(codes, sort=False).transform("median").to_numpy(), dtype=np.float64) * 1.4826
    size = pd.Series(codes).map(pd.Series(codes).value_counts()).to_numpy()
    return med, mad, size


class PeerGroupDetector(OutlierDetector):
    def __init__(self, min_group=4, floor_fraction=1.0, min_scale=1e-3, contamination=0.01):
        self.min_group = min_group
        self.floor_fraction = floor_fraction
        self.min_scale = min_scale
        self.contamination = contamination

    _finite = "allow-nan"

    def fit(self, X, y=None, groups=None):
        X = validate_data(self, X, reset=True, dtype=np.float64, ensure_all_finite="allow-nan")
        codes = self._codes(groups, len(X))
        med, mad, _ = group_median_mad(X, np.zeros(len(X), dtype=np.int64) if codes is None else codes)
        floor = _nanmedian(mad, axis=0) * self.floor_fraction
        self.scale_floor_ = np.maximum(np.nan_to_num(floor, nan=0.0), self.min_scale)
        self.population_median_ = np.nan_to_num(_nanmedian(X, axis=0), nan=0.0)
        self.offset_ = float(np.quantile(-self._peer_z(X, codes), self.contamination))
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    def score_samples(self, X, groups=None):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64, ensure_all_finite="allow-nan")
        return -self._peer_z(X, self._codes(groups, len(X)))

    def decision_function(self, X, groups=None):
        return self.score_samples(X, groups) - self.offset_

    def predict(self, X, groups=None):
        return np.where(self.decision_function(X, groups) < 0, -1, 1)

    def fit_predict(self, X, y=None, groups=None):
        return self.fit(X, groups=groups).predict(X, groups)

    def signed_deviations(self, X, groups=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(value - peer median, the spread it is measured in, peer median) per feature."""
        check_is_fitted(self)
        X = np.asarray(X, dtype=np.float64)
        med, scale = self._medians_scale(X, self._codes(groups, len(X)))
        return X - med, scale, med

    def deviations(self, X, groups=None) -> tuple[np.ndarray, np.ndarray]:
        """(per-feature z, per-feature peer median) for explanations."""
        check_is_fitted(self)
        X = np.asarray(X, dtype=np.float64)
        med, z = self._medians_z(X, self._codes(groups, len(X)))
        return z, med

    @staticmethod
    def _codes(groups, n):
        if groups is None:
            return None
        groups = np.asarray(groups)
        if groups.shape != (n,):
            raise ValueError(f"groups has shape {groups.shape}, expected ({n},)")
        return pd.factorize(groups)[0]

    def _medians_z(self, X, codes):
        med, scale = self._medians_scale(X, codes)
        return med, np.nan_to_num(np.abs(X - med) / scale, nan=0.0)

    def _medians_scale(self, X, codes):
        if codes is None:  # against the fitted population
            med = np.broadcast_to(self.population_median_, X.shape)
            return med, np.broadcast_to(self.scale_floor_, X.shape)
        med, mad, size = group_median_mad(X, codes)
        small = size < self.min_group
        if small.any():
            gmed = _nanmedian(X, axis=0)
            gmad = _nanmedian(np.abs(X - gmed), axis=0) * 1.4826
            med[small], mad[small] = gmed, gmad
        scale = np.maximum(np.nan_to_num(mad, nan=0.0), self.scale_floor_)
        return med, scale

    def _peer_z(self, X, codes):
        return self._medians_z(X, codes)[1].max(axis=1) if X.shape[1] else np.zeros(len(X))

    def _z(self, X):
        return self._peer_z(X, None)
