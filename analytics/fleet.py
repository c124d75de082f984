"""Fleet scoring: every component, every interval, every detector, vectorised. Pure (no I/O).

`FleetScorer.score(batches)` takes one interval's batches, turns them into features once
(`FeatureTracker`) and hands them to each detector of `DETECTORS` in turn, which returns its
`Finding`s:

- univariate: each stream's metrics against their own online robust baseline, and stuck
  sensors (a normally noisy value repeated exactly);
- peer_group: accelerators against same-model peers on their host (or in their rack or row
  when the host has too few) right now, beyond each unit's own usual offset from them;
- counter_trend: error-counter increments against their normal rate;
- thermal_residual: die temperature against what power and inlet explain (smoothed, so only
  persistent excess counts);
- isolation_forest: window features per accelerator model;
- inlet_residual: rack inlets against what their zone's heat explains (reported as
  thermal_residual);
- slow_drift: quantities that hold steady when healthy (a filter's pressure drop, a supply
  temperature) leaving the unit's own baseline while its neighbours' stay put;
- novelty: quantities a controller or the supply holds level (voltages, a supply temperature)
  going beyond anything the unit has read, by the same vote that scores NAB
  (`dcops.analytics.detectors.novelty`).

A detector's abnormality z becomes a score with `z_to_score` (0.5 at its alarm level); a
finding is emitted when the score reaches `ScorerParams.min_score`, naming the features that
drove it with observed and expected values. Trained states (IsolationForest, thermal, peer
floors, counter rates) come from a `ModelBundle`; without one, the detectors that need no
training still run. Each detector declares itself in a `DetectorSpec`
(`dcops.analytics.detectors.spec`); adding one is its module plus its line in `DETECTORS`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping

import numpy as np

from dcops.analytics.detectors import COUNTER_TREND, INLET_RESIDUAL, ISOLATION_FOREST, PEER_GROUP, THERMAL_RESIDUAL
from dcops.analytics.detectors import RobustStreamingDetector, StreamState, z_to_score
from dcops.analytics.detectors.drift import SLOW_DRIFT
from dcops.analytics.detectors.novelty import NOVELTY
from dcops.analytics.detectors.spec import DetectorSpec
from dcops.analytics.features import MIN_SCALE_BY_UNIT, REL_SCALE_BY_UNIT, STREAMS
from dcops.analytics.tracker import FeatureTracker
from dcops.catalogue import metric
from dcops.findings import Contribution, Finding
from dcops.topology import Inventory

if TYPE_CHECKING:
    from dcops.analytics.models import ModelBundle
    from dcops.analytics.tracker import IntervalFeatures

__all__ = ["ScorerParams", "FleetScorer", "MIN_SCALE_BY_UNIT", "DETECTORS"]


@dataclass(frozen=True)
class ScorerParams:
    min_score: float = 0.5  # findings at or above this score are emitted
    univariate_z: float = 8.0
    alpha: float = 0.02  # baseline learning rate per interval (about 8 minutes at 10 s)
    clip: float = 3.0
    warmup: int = 20  # intervals before univariate findings
    stuck_after: int = 1  # exact repeats before a sensor can be called stuck (at least)
    stuck_p: float = 1e-9  # a run of repeats is "stuck" when a healthy sensor repeats that long this rarely
    peer_z: float = 8.0
    drift_z: float = 6.0  # in standard errors of the smoothed departure (see detectors.drift)
    thermal_z: float = 6.0
    thermal_smoothing: float = 0.5
    isolation_z: float = 14.0
    counter_z: float = 6.0  # a fleet has millions of counter-intervals a day: 1e-9 tails
    window: int = 30


class _Bank:
    """Univariate state of one stream (components x metrics)."""

    def __init__(self, stream, n: int, params: ScorerParams, location: np.ndarray | None = None) -> None:
        units = [metric(m).unit for m in stream.metrics]
        self.stream = stream
        self.abs_floor = np.array([MIN_SCALE_BY_UNIT.get(u, 1e-3) for u in units])
        self.rel_floor = np.array([REL_SCALE_BY_UNIT.get(u, 0.0) for u in units])
        self.state = StreamState.empty((n, len(stream.metrics)), self.abs_floor)
        self.sensor = np.array([m in stream.sensors for m in stream.metrics])
        self.ambient = np.array([m in stream.ambient for m in stream.metrics])
        self.params = params
        # per metric, the EW share of this stream's series whose reading changed from one interval
        # to the next: how often a healthy sensor of this kind, here and now, moves
        self.peer_change = np.full(len(stream.metrics), np.nan)
        # where each unit is (location group codes; -1: no neighbours to compare with) and, per
        # unit, the range its neighbours' common reading spanned while its own value was held
        self.location = np.full(n, -1) if location is None else np.asarray(location, dtype=np.int64)
        self.ref_lo = np.full((n, len(stream.metrics)), np.nan)
        self.ref_hi = np.full((n, len(stream.metrics)), np.nan)
        self.ref_s = np.full((n, len(stream.metrics)), np.nan)  # the reference, smoothed
        self.ref_noise = np.zeros((n, len(stream.metrics)))      # its EW mean |deviation| from that
        # sensors driven by another metric of the same unit (an accelerator's temperatures by its
        # power): the driver's column, and its smoothed value, noise and range while the sensor held
        drivers = dict(stream.drivers)
        self.driver = np.array([stream.metrics.index(drivers[m]) if m in drivers else -1 for m in stream.metrics])
        self.driven = self.driver >= 0
        self.drv_floor = np.where(self.driven, self.abs_floor[np.maximum(self.driver, 0)], np.inf)
        self.drv_s = np.full((n, len(stream.metrics)), np.nan)
        self.drv_noise = np.zeros((n, len(stream.metrics)))
        self.drv_lo = np.full((n, len(stream.metrics)), np.nan)
        self.drv_hi = np.full((n, len(stream.metrics)), np.nan)

    def step(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(z per value, stuck mask, expected per value), then learn X."""
        p, st = self.params, self.state
        floor = np.maximum(self.abs_floor, self.rel_floor * np.abs(st.loc))
        st.scale = np.maximum(st.scale, floor)
        expected = st.loc.copy()
        z = np.nan_to_num(st.z(X), nan=0.0)
        z[st.n < p.warmup] = 0.0
        # a run of repeats is stuck when this sensor's own history and its peers' rate of change make
        # it improbable and nothing says the quantity stood still; or, for a sensor of the air
        # around it, when its neighbours' common reading moved by two of its steps meanwhile
        own = st.stuck_mask(X, p.stuck_p, p.stuck_after) & (st.stuck + 1 >= self._peer_run_needed(X))
        ref_moved, ref_known = self._reference_moved(X)
        # a unit's own temperature is judged by its own load (its driver), not by neighbours
        # running other jobs: a GPU on a steady job holds its whole degree while its host's others
        # warm with theirs
        judged = (st.move >= st.quantum) | np.where(self.driven, self._driver_moved(X) >= 1.5,
                                                    (ref_moved >= 1.5) | ~ref_known)
        held = ~np.isnan(X) & (X == st.last) & np.isfinite(st.quantum)
        stuck = self.sensor & (st.n >= p.warmup) & held & ((own & judged) | (self.ambient & (ref_moved >= 2.0)))
        st.update(X, p.alpha, p.clip, floor, p.warmup)
        return z, stuck, expected


    def _reference_moved(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(steps, known): how far its neighbours' common reading moved while this sensor held its
        value, in steps of its own quantisation (or of the reference's noise, if coarser); known
        is False where it has no neighbours to ask.

        A reading quantised coarser than its noise (a server inlet in whole degrees in a steady
        cold aisle) sits on one value for hours when healthy: its repeats say nothing until the
        quantity it measures changes. Its neighbours (same kind, same host, else rack, row or
        hall) measure that quantity: their common reading, each corrected by its usual offset from the
        others, is finer than any one of them (different biases dither the steps). It is smoothed
        (EW, 10 intervals) and its noise tracked, so that noise alone never reads as movement.
        """
        st = self.state
        ref = self._reference(X)
        fresh_ref = np.isnan(self.ref_s)
        noise_now = np.abs(ref - self.ref_s)
        self.ref_noise = np.where(fresh_ref | np.isnan(ref), self.ref_noise,
                                  0.98 * self.ref_noise + 0.02 * np.nan_to_num(noise_now))
        self.ref_s = np.where(np.isnan(ref), self.ref_s, np.where(fresh_ref, ref, 0.9 * self.ref_s + 0.1 * ref))
        held = ~np.isnan(X) & (X == st.last)
        fresh = ~held | np.isnan(self.ref_lo)
        self.ref_lo = np.where(fresh, self.ref_s, np.fmin(self.ref_lo, self.ref_s))
        self.ref_hi = np.where(fresh, self.ref_s, np.fmax(self.ref_hi, self.ref_s))
        unit = np.maximum(st.quantum, 1.5 * self.ref_noise)
        with np.errstate(invalid="ignore", divide="ignore"):
            steps = np.nan_to_num((self.ref_hi - self.ref_lo) / unit, nan=0.0, posinf=0.0)
        return steps, ~np.isnan(ref)

    def _driver_moved(self, X: np.ndarray) -> np.ndarray:
        """Per unit and driven sensor: how far the unit's own driver (smoothed, EW 10 intervals)
        moved while the sensor held its value, in units of the driver's noise (1.5 x its EW mean
        |deviation| from the smoothed value, at least its smallest spread); 0 for other sensors."""
        if not self.driven.any():
            return np.zeros(X.shape)
        D = np.where(self.driven, X[:, np.maximum(self.driver, 0)], np.nan)
        fresh = np.isnan(self.drv_s)
        self.drv_noise = np.where(fresh | np.isnan(D), self.drv_noise,
                                  0.98 * self.drv_noise + 0.02 * np.nan_to_num(np.abs(D - self.drv_s)))
        self.drv_s = np.where(np.isnan(D), self.drv_s, np.where(fresh, D, 0.9 * self.drv_s + 0.1 * D))
        held = ~np.isnan(X) & (X == self.state.last)
        restart = ~held | np.isnan(self.drv_lo)
        self.drv_lo = np.where(restart, self.drv_s, np.fmin(self.drv_lo, self.drv_s))
        self.drv_hi = np.where(restart, self.drv_s, np.fmax(self.drv_hi, self.drv_s))
        unit = np.maximum(self.drv_floor, 1.5 * self.drv_noise)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.nan_to_num((self.drv_hi - self.drv_lo) / unit, nan=0.0, posinf=0.0)

    def _reference(self, X: np.ndarray) -> np.ndarray:
        """Per unit and sensor metric, the mean of its neighbours' readings less each one's usual
        offset from their group (itself left out); NaN with fewer than two neighbours reporting."""
        st, g = self.state, self.location
        out = np.full(X.shape, np.nan)
        placed = g >= 0
        if not placed.any():
            return out
        gi = g[placed]
        size = int(gi.max()) + 1
        for j in np.flatnonzero(self.sensor):
            known = st.n[placed, j] > 0
            loc = st.loc[placed, j]
            centre = np.bincount(gi, np.where(known, loc, 0.0), size) / np.maximum(np.bincount(gi, known, size), 1)
            adj = X[placed, j] - (loc - centre[gi])  # the reading less this unit's usual offset
            ok = ~np.isnan(adj) & known
            own = np.where(ok, adj, 0.0)
            others = np.bincount(gi, ok, size)[gi] - ok
            with np.errstate(divide="ignore", invalid="ignore"):
                out[placed, j] = np.where(others >= 2, (np.bincount(gi, own, size)[gi] - own) / others, np.nan)
        return out

    def _peer_run_needed(self, X: np.ndarray) -> np.ndarray:
        """Per metric, the run of repeats that the sensor's peers make improbable.

        A repeat is suspicious only when the signal should have moved. At the resolution real
        collectors deliver (whole degrees from NVML and BMCs) a quiet quantity, such as a server
        inlet in a steady cold aisle, repeats for hours on every unit, and its own history cannot
        tell a quiet spell from a stuck sensor. Its peers can: when the readings of the same metric
        on the other units change in a share `c` of intervals, a healthy one stays put for k
        intervals with chance (1 - c)^k; a run is stuck only when that is below `stuck_p` too.
        """
        last = self.state.last
        valid = ~np.isnan(X) & ~np.isnan(last)
        count = valid.sum(axis=0)
        share = np.where(count > 0, (valid & (X != last)).sum(axis=0) / np.maximum(count, 1), np.nan)
        known = ~np.isnan(self.peer_change)
        self.peer_change = np.where(np.isnan(share), self.peer_change,
                                    np.where(known, 0.9 * self.peer_change + 0.1 * share, share))
        stay = np.clip(1.0 - np.nan_to_num(self.peer_change, nan=0.0), 1e-6, 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(stay < 1.0, np.ceil(np.log(self.params.stuck_p) / np.log(stay)), np.inf)


class _UnivariatePart:
    """Each stream's metrics against their own baselines (`_Bank`), and stuck sensors."""

    def __init__(self, fleet: FleetScorer, state: None) -> None:
        self.fleet = fleet
        self.banks = {s.measurement: _Bank(s, len(fleet.tracker.ids[s.measurement]), fleet.params,
                                           location_groups(fleet.inventory, fleet.tracker.ids[s.measurement]))
                      for s in STREAMS}

    def score(self, f: IntervalFeatures) -> list[Finding]:
        fleet, out = self.fleet, []
        for s in STREAMS:
            X = f.streams[s.measurement]
            z, stuck, expected = self.banks[s.measurement].step(X)
            ids = fleet.tracker.ids[s.measurement]
            out += fleet.emit(f.time_ns, ids, "univariate", z, s.metrics, X, expected, fleet.params.univariate_z)
            out += fleet.emit_stuck(f.time_ns, ids, stuck, s.metrics, X)
        return out


UNIVARIATE = DetectorSpec(
    "univariate", RobustStreamingDetector, "every stream's metrics against their own online baseline; stuck sensors",
    tuple(dict.fromkeys(m for s in STREAMS for m in s.metrics)), _UnivariatePart)


class FleetScorer:
    def __init__(self, inventory: Inventory, models: ModelBundle | None = None,
                 params: ScorerParams = ScorerParams(), detectors: Mapping[str, DetectorSpec] | None = None) -> None:
        self.inventory = inventory
        self.params = params
        self.tracker = FeatureTracker(inventory, params.window)
        self.intervals = 0
        self.detectors = DETECTORS if detectors is None else detectors
        self.parts = {name: spec.scorer(self, models.models.get(name) if models is not None else None)
                      for name, spec in self.detectors.items()}

    def set_models(self, models: ModelBundle) -> None:
        """Swap in freshly trained models between intervals (online state is kept)."""
        for name, part in self.parts.items():
            if self.detectors[name].trainer is not None:
                part.set_model(models.models.get(name))

    # ----- scoring --------------------------------------------------------------------------
    def score(self, batches) -> list[Finding]:
        f = self.tracker.observe(batches)
        self.intervals += 1
        out: list[Finding] = []
        for part in self.parts.values():
            out += part.score(f)
        return out

    # ----- findings -------------------------------------------------------------------------
    def emit(self, t_ns, ids, detector, z, names, observed, expected, z_alarm, total=None) -> list[Finding]:
        """Findings for the rows of `ids` whose score (from their largest z, or `total`) reaches
        `min_score`, each naming its top three features with observed and expected values."""
        zmax = z.max(axis=1) if total is None else total
        score = z_to_score(zmax, z_alarm)
        hits = np.flatnonzero(score >= self.params.min_score)
        out = []
        for i in hits:
            order = np.argsort(-z[i])[:3]
            contribs = tuple(Contribution(names[j], _f(observed[i, j]), _f(expected[i, j]), round(float(z[i, j]), 2))
                             for j in order if z[i, j] > 0)
            top = contribs[0] if contribs else None
            why = (f"{top.feature} {top.observed:.4g}, expected {top.expected:.4g} ({top.weight:.1f} spreads)"
                   if top else "abnormal")
            out.append(self._finding(t_ns, ids[i], detector, float(score[i]), why, contribs))
        return out

    def emit_stuck(self, t_ns, ids, stuck, names, observed) -> list[Finding]:
        out = []
        for i, j in zip(*np.nonzero(stuck)):
            c = Contribution(names[j], _f(observed[i, j]), _f(observed[i, j]), 0.0)
            out.append(self._finding(t_ns, ids[i], "univariate", 0.9,
                                     f"{names[j]} stuck at {observed[i, j]:.4g}: a noisy sensor repeating itself",
                                     (c,), {"kind": "stuck_sensor", "metric": names[j]}))
        return out

    def _finding(self, t_ns, name, detector, score, why, contribs, attrs=None) -> Finding:
        comp = self.inventory.components.get(name)
        target = comp.tags(self.inventory.site) if comp is not None else {"site": self.inventory.site}
        return Finding(int(t_ns), str(name), target, detector, round(score, 4), why, contribs, attrs or {})


LOCATION_LEVELS = ("device", "rack", "row", "hall")


def location_groups(inventory: Inventory, ids, min_size: int = 3) -> np.ndarray:
    """Group code per component: its host (accelerators), else its rack, row or hall, the finest
    place where at least `min_size` components of its kind share the air or the job; -1 where
    none does."""
    comps = [inventory.components.get(str(i)) for i in ids]
    keys = {}
    for level in LOCATION_LEVELS:
        keys[level] = [(c.kind, getattr(c, level)) if c is not None and getattr(c, level) else None for c in comps]
    counts = {level: Counter(k for k in ks if k is not None) for level, ks in keys.items()}
    codes: dict = {}
    out = np.full(len(comps), -1, dtype=np.int64)
    for i in range(len(comps)):
        for level in LOCATION_LEVELS:
            k = keys[level][i]
            if k is not None and counts[level].get(k, 0) >= min_size:
                out[i] = codes.setdefault((level,) + k, len(codes))
                break
    return out


def _f(x) -> float:
    x = float(x)
    return x if np.isfinite(x) else float("nan")


# The fleet's detectors, in the order their findings are emitted each interval.
DETECTORS: Mapping[str, DetectorSpec] = {s.name: s for s in (
    UNIVARIATE, PEER_GROUP, COUNTER_TREND, THERMAL_RESIDUAL, ISOLATION_FOREST, INLET_RESIDUAL, SLOW_DRIFT, NOVELTY,
)}
