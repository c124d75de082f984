"""Slow drift: a quantity that holds steady when healthy, leaving its own baseline while its
neighbours' stay put.

Wear shows as drift, not as a spike: a CRAC's filter clogs over days and its pressure drop
creeps up; a unit losing refrigerant lets its supply temperature creep. A streaming z-score
(`univariate`) follows such a creep with its baseline and flags it only once the creep is
steep; comparing units with their peers right now (`peer_group`) measures the departure in the
spread between units, which is large when units differ (filters of different ages read 90 to
150 Pa clean). This detector measures each unit against itself instead:

- `base`: the unit's own usual level, a plain mean while warming up, then an exponentially
  weighted mean over hours (`base_alpha`), learned only from readings that are not abnormal, so
  a drift is not absorbed into it;
- `ref`: what the unit's neighbours (the cooling units of its zone, of its kind; else units of
  its kind in its rack, row or hall: `drift_groups`) did meanwhile: what their departures
  from their own baselines agree on (`neighbour_median`). A change all of them share (the
  hall's load, a new setpoint) is not one unit's wear; one neighbour that is itself failing
  does not move it;
- the departure `d = (x - base) - ref`, smoothed (`alpha`, a few minutes), is scored upwards
  only (wear raises a filter's pressure drop and a unit's supply temperature; a fall, such as a
  filter changed for a new one, is the unit's new level: it starts over with a new baseline)
  in units of its own standard error: the unit's noise (EW mean |d - smoothed d|, floored by
  the unit's minimum scale) times sqrt(alpha / (2 - alpha) + the baseline's own variance
  share), or, if larger, how far the smoothed departure has been seen to wander while healthy
  (noise that is not white). A creep of a tenth of the noise per interval stands out within
  minutes; no single noisy reading does.

Which quantities hold steady is physics, declared per stream (`Stream.drifts`): a filter's
pressure drop, a controlled supply temperature; not a fan speed or a return temperature, which
follow the unit's share of the load.

`DriftState` is the vectorised bank the fleet scorer keeps; `SlowDriftDetector` is the same
math as a scikit-learn estimator over one multivariate stream (rows are time steps, no
neighbours).
"""

from __future__ import annotations

import warnings
from collections import Counter
from typing import TYPE_CHECKING

import numpy as np
from sklearn.utils.validation import check_is_fitted, validate_data

from dcops.analytics.detectors.base import OutlierDetector
from dcops.analytics.detectors.spec import DetectorSpec
from dcops.analytics.features import STREAMS, unit_floors

if TYPE_CHECKING:
    from dcops.analytics.fleet import FleetScorer
    from dcops.analytics.tracker import IntervalFeatures
    from dcops.findings import Finding

__all__ = ["DriftState", "SlowDriftDetector", "SLOW_DRIFT", "drift_groups", "neighbour_median"]

_SD_PER_MEAN_ABS = 1.2533  # sd / mean |deviation| for normal noise


class DriftState:
    """Drift state of (units, metrics); `step(X, groups)` scores X, then learns it."""

    def __init__(self, shape, floor, alpha: float = 0.05, base_alpha: float = 1 / 2160, warmup: int = 20,
                 learn_z: float = 3.0, restart_z: float = 14.0) -> None:
        self.floor = np.broadcast_to(np.asarray(floor, dtype=np.float64), shape).copy()
        self.base = np.zeros(shape)
        self.base_var = np.ones(shape)  # variance of `base` as a share of the noise variance
        self.smooth = np.zeros(shape)
        self.noise = np.zeros(shape)    # EW mean |d - smooth|
        self.wander = np.zeros(shape)   # EW mean |smooth| while healthy and warm
        self.n = np.zeros(shape)
        self.alpha, self.base_alpha, self.warmup, self.learn_z = alpha, base_alpha, warmup, learn_z
        self.wander_alpha = alpha / 10
        self._groups, self._batches = None, ()  # the groups last given, and their batches
        self.restart_z = restart_z  # a fall this far below the baseline (as far as a rise that pages) is a new level

    def sd(self) -> np.ndarray:
        return np.maximum(_SD_PER_MEAN_ABS * self.noise, self.floor)

    def se(self) -> np.ndarray:
        """Standard error of the smoothed departure: what white noise of the unit's spread gives
        it, or what it has been seen to wander when healthy (noise that is not white: airflow
        that varies, a control loop hunting), whichever is larger."""
        white = self.sd() * np.sqrt(self.alpha / (2 - self.alpha) + self.base_var)
        return np.maximum(white, _SD_PER_MEAN_ABS * self.wander)

    def step(self, X: np.ndarray, groups: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(z per value, expected per value): z is 0 until a unit is warm; expected is the unit's
        baseline moved by what its neighbours did."""
        X = np.asarray(X, dtype=np.float64)
        ok = ~np.isnan(X)
        warm = self.n >= self.warmup
        # departures from each unit's own baseline; a unit not yet seen has none
        own = np.where(ok & (self.n > 0), X - self.base, np.nan)
        if groups is not None and groups is not self._groups:
            self._groups, self._batches = groups, group_batches(groups)
        ref = np.zeros(X.shape) if groups is None else np.nan_to_num(neighbour_median(own, groups, self._batches), nan=0.0)
        d = own - ref
        a = self.alpha
        smooth = np.where(ok, np.where(self.n > 0, (1 - a) * self.smooth + a * np.nan_to_num(d), 0.0), self.smooth)
        se = self.se()
        signed = np.where(ok & warm, smooth / se, 0.0)
        z = np.maximum(signed, 0.0)  # wear raises these quantities; a fall is a new normal
        expected = self.base + ref

        # learn: the first reading starts the baseline; while warming up, plain means; then
        # readings that are not abnormal, slowly. An abnormal one still moves the baseline, half
        # as fast: a drift of an hour or two stays a departure, a lasting new level (a filter of
        # another type, a unit's new setpoint) is taken as normal within a day
        first = ok & (self.n == 0)
        later = ok & ~first
        normal = later & (~warm | (np.abs(signed) < self.learn_z))
        b = np.where(warm, np.where(normal, self.base_alpha, self.base_alpha / 2), 1.0 / (self.n + 1.0))
        dev = np.nan_to_num(d)
        self.noise = np.where(normal, self.noise + np.where(warm, a, b) * (np.abs(dev - self.smooth) - self.noise),
                              self.noise)
        new_base = self.base + b * np.nan_to_num(X - self.base)
        self.base = np.where(first, np.nan_to_num(X), np.where(later, new_base, self.base))
        self.base_var = np.where(first, 1.0, np.where(later, np.where(warm, (1 - b) ** 2 * self.base_var + b * b,
                                                                      1.0 / (self.n + 1.0)), self.base_var))
        self.wander = np.where(normal & warm, self.wander + self.wander_alpha * (np.abs(smooth) - self.wander),
                               self.wander)
        # a warm unit keeps its smoothed departure; one warming up restarts it from its now
        # better baseline
        self.smooth = np.where(ok & warm, smooth, np.where(ok, 0.0, self.smooth))
        self.n = self.n + ok
        # A fall (a filter changed for a new one, reading 40 Pa lower) is the unit's new level:
        # it starts over (a new baseline and noise from its next `warmup` readings; its wander
        # kept), so neither a page nor a blind spot for the next clogging follows.
        fell = later & warm & (signed <= -self.restart_z)
        self.n = np.where(fell, 0, self.n)
        self.smooth = np.where(fell, 0.0, self.smooth)
        return np.nan_to_num(z), expected


def group_batches(groups: np.ndarray) -> tuple[tuple[int, np.ndarray], ...]:
    """The rows of each group (code >= 0), groups of one size stacked together: (size, rows of
    shape (groups, size)). Groups are fixed by the topology: built once, used every interval."""
    groups = np.asarray(groups)
    codes, sizes = np.unique(groups[groups >= 0], return_counts=True)
    return tuple((int(k), np.stack([np.flatnonzero(groups == g) for g in codes[sizes == k]]))
                 for k in np.unique(sizes))


def neighbour_median(D: np.ndarray, groups: np.ndarray, batches=None) -> np.ndarray:
    """Per row and column, what the other rows of its group agree on (group code < 0: none):
    the median of three or more; of two, the one nearer zero, so that one failing neighbour
    never moves it (the median of two is their mean); NaN with fewer than two. Groups of one
    size are done together (`batches`: `group_batches(groups)`, when the caller keeps it); a
    group of more than 64 uses its median with the row itself included, which one row barely
    moves."""
    out = np.full(D.shape, np.nan)
    for k, rows in (group_batches(groups) if batches is None else batches):
        if k > 64:
            for one in rows:
                G = D[one]
                others = (~np.isnan(G)).sum(axis=0)[None, :] - ~np.isnan(G)
                with np.errstate(all="ignore"), warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    out[one] = np.where(others >= 3, np.nanmedian(G, axis=0)[None, :], np.nan)
            continue
        G = D[rows]                                    # (groups, k, metrics)
        M = np.repeat(G[:, None, :, :], k, axis=1)     # (groups, member, the others, metrics)
        M[:, np.arange(k), np.arange(k), :] = np.nan   # a member is not its own neighbour
        count = (~np.isnan(M)).sum(axis=2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices: fewer than two, NaN below
            med = np.nanmedian(M, axis=2)
        near = np.take_along_axis(M, np.nanargmin(np.where(np.isnan(M), np.inf, np.abs(M)), axis=2)[:, :, None, :],
                                  axis=2)[:, :, 0, :]
        out[rows] = np.where(count >= 3, med, np.where(count == 2, near, np.nan))
    return out


class SlowDriftDetector(OutlierDetector):
    """Slow drift of one multivariate stream against its own baseline (rows = time steps).

    `fit(X)` sets the baseline and noise from history; `score_samples(X)` scores rows against
    them (stateless: the level's departure in noise units); `score_stream(X)` scores each row
    causally and then learns it, as the fleet scorer does (smoothed departure in standard
    errors, see the module docstring).
    """

    def __init__(self, alpha=0.05, base_alpha=1 / 2160, min_scale=1e-3, warmup=20, learn_z=3.0, contamination=0.01):
        self.alpha = alpha
        self.base_alpha = base_alpha
        self.min_scale = min_scale
        self.warmup = warmup
        self.learn_z = learn_z
        self.contamination = contamination

    def _fit(self, X):
        self.state_ = DriftState(X.shape[1:], self.min_scale, self.alpha, self.base_alpha, self.warmup, self.learn_z)
        self.state_.step(X[:1])
        for row in X[1:]:
            self.state_.step(row[None, :])
        self.location_ = self.state_.base[0].copy()
        self.scale_ = self.state_.sd()[0].copy()

    def _z(self, X):
        return np.max(np.maximum(X - self.location_, 0.0) / self.scale_, axis=1)  # upwards, as the stream

    def score_stream(self, X) -> np.ndarray:
        """Causal per-row drift z (max over features); learns each row after scoring it."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64, ensure_all_finite="allow-nan")
        out = np.array([float(np.max(self.state_.step(row[None, :])[0])) for row in X])
        self.location_, self.scale_ = self.state_.base[0].copy(), self.state_.sd()[0].copy()
        return out


def drift_groups(inventory, ids, attr: str = "", min_size: int = 3) -> np.ndarray:
    """Group code per unit (-1: none), units that see the same conditions: cooling units of one
    zone and one kind (`attr`, e.g. CRAC or CDU: air and liquid answer to different loads),
    which share the zone's heat and take over each other's share when one stops; units that
    serve no zone are grouped by place (`location_groups`). A zone with fewer than `min_size`
    such units gives none: each is judged against its own baseline alone."""
    from dcops.analytics.fleet import location_groups

    zone_of = {u: z.name for z in inventory.of_kind("zone") for u in z.attrs.get("units", ())}
    codes = location_groups(inventory, ids, min_size)
    keys = []
    for name in ids:
        c = inventory.components.get(str(name))
        zone = zone_of.get(str(name))
        kind = str(c.attrs.get(attr, "")) if attr and c is not None else ""
        keys.append(None if zone is None or c is None else (zone, kind))
    counts = Counter(k for k in keys if k is not None)
    base = int(codes.max()) + 1 if len(codes) else 0
    zone_codes: dict = {}
    out = codes.copy()
    for i, k in enumerate(keys):
        if k is not None:
            out[i] = base + zone_codes.setdefault(k, len(zone_codes)) if counts[k] >= min_size else -1
    return out


class _DriftPart:
    """Each stream's `drifts` metrics, per unit, against the unit's own baseline moved by what
    its neighbours did."""

    def __init__(self, fleet: FleetScorer, state: None) -> None:
        self.fleet = fleet
        self.streams = {}
        for s in STREAMS:
            if not s.drifts:
                continue
            ids = fleet.tracker.ids[s.measurement]
            self.streams[s.measurement] = (
                [s.metrics.index(m) for m in s.drifts],
                drift_groups(fleet.inventory, ids, s.peer_attr),
                DriftState((len(ids), len(s.drifts)), unit_floors(s.drifts), warmup=fleet.params.warmup))

    def score(self, f: IntervalFeatures) -> list[Finding]:
        fleet, out = self.fleet, []
        for s in STREAMS:
            if s.measurement not in self.streams:
                continue
            cols, groups, state = self.streams[s.measurement]
            X = f.streams[s.measurement][:, cols]
            z, expected = state.step(X, groups)
            out += fleet.emit(f.time_ns, fleet.tracker.ids[s.measurement], "slow_drift", z, s.drifts, X, expected,
                              fleet.params.drift_z)
        return out


SLOW_DRIFT = DetectorSpec(
    "slow_drift", SlowDriftDetector,
    "quantities that hold steady when healthy (filter pressure drop, supply temperature) leaving their own "
    "baseline while their neighbours' stay put",
    tuple(dict.fromkeys(m for s in STREAMS for m in s.drifts)), _DriftPart)
