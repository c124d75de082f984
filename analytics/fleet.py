"""Fleet scoring: every component, every interval, every detector, vectorised. Pure (no I/O).

`FleetScorer.score(batches)` takes one interval's batches and returns `Finding`s:

- univariate: each stream's metrics against their own online robust baseline, and stuck
  sensors (a normally noisy value repeated exactly);
- peer_group: accelerators against same-model peers on their host (or in their rack or row
  when the host has too few) right now, beyond each unit's own usual offset from them;
- thermal_residual: die temperature against what power and inlet explain (smoothed, so only
  persistent excess counts);
- isolation_forest: window features per accelerator model;
- counter_trend: error-counter increments against their normal rate.

A detector's abnormality z becomes a score with `z_to_score` (0.5 at its alarm level); a
finding is emitted when the score reaches `ScorerParams.min_score`, naming the features that
drove it with observed and expected values. Trained models (IsolationForest, thermal, peer
floors, counter rates) come from a `ModelBundle`; without one, the detectors that need no
training still run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dcops.analytics.detectors import CounterTrendDetector, PeerGroupDetector, StreamState, z_to_score
from dcops.analytics.detectors.peer import PeerOffsets
from dcops.analytics.features import ACCEL_COUNTERS, ACCEL_MODEL_FEATURES, STREAMS, WINDOW_FEATURE_NAMES
from dcops.analytics.models import ModelBundle
from dcops.analytics.tracker import FeatureTracker, THERMAL_INPUTS, peer_groups
from dcops.catalogue import metric
from dcops.findings import Contribution, Finding
from dcops.topology import Inventory

__all__ = ["ScorerParams", "FleetScorer", "MIN_SCALE_BY_UNIT"]

# Smallest spread a baseline may have, per unit: below it, noise-free signals would alarm on
# rounding. Relative floors (share of the level) apply on top for power.
MIN_SCALE_BY_UNIT = {"degC": 0.4, "W": 5.0, "state": 0.05, "count": 0.05, "V": 2.0, "%": 1.5, "Pa": 3.0,
                     "MHz": 15.0, "l/min": 5.0, "%RH": 1.5}
REL_SCALE_BY_UNIT = {"W": 0.02}
# Not clocks: an idle accelerator drops to its idle clock, which is a state, not a fault.
PEER_FEATURES = ("accel_temp_degc", "accel_mem_temp_degc", "accel_fan_pct")


def peer_min_scale() -> np.ndarray:
    """Unit floors for the accelerator peer spread: NPU tools report whole degrees, so a quiet
    group can have a spread of 0, and 1 degC against it must not read as 1,000 spreads."""
    return np.array([MIN_SCALE_BY_UNIT.get(metric(m).unit, 1e-3) for m in PEER_FEATURES])


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
        self.co = np.zeros((3, n, len(stream.metrics)))  # E[dx dr], E[dx^2], E[dr^2]
        self.co_n = np.zeros((n, len(stream.metrics)))

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
        judged = (st.move >= st.quantum) | (ref_moved >= 1.5) | ~ref_known
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


class FleetScorer:
    def __init__(self, inventory: Inventory, models: ModelBundle | None = None,
                 params: ScorerParams = ScorerParams()) -> None:
        self.inventory = inventory
        self.params = params
        self.models = models
        self.tracker = FeatureTracker(inventory, params.window)
        self.banks = {s.measurement: _Bank(s, len(self.tracker.ids[s.measurement]), params,
                                           location_groups(inventory, self.tracker.ids[s.measurement]))
                      for s in STREAMS}
        self.stream_peers = {s.measurement: self._stream_peer(s) for s in STREAMS if s.peer_metrics}
        self.groups = peer_groups(inventory)
        self.accel_models = np.asarray(inventory.accel_tags["model"], dtype=object)
        self.peer = models.peer if models and models.peer else PeerGroupDetector(min_scale=peer_min_scale()).fit(
            np.zeros((4, len(PEER_FEATURES))))
        self.counters = models.counters if models and models.counters else CounterTrendDetector().fit(
            np.zeros((2, len(ACCEL_COUNTERS))))
        self._thermal_z = np.zeros(len(inventory.accel_ids))
        self._inlet_z = np.zeros(len(self.tracker.rack_index))
        self._peer_cols = [ACCEL_MODEL_FEATURES.index(f) for f in PEER_FEATURES]
        # each unit's usual offset from its peers (sensor bias, position in the row): peers compare
        # the deviation beyond it, not raw values
        self.peer_offsets = PeerOffsets((len(inventory.accel_ids), len(PEER_FEATURES)), warmup=params.warmup)
        # Accelerators of a host with enough of them are compared with their host-mates instead of
        # the rack: a shift all of a host's accelerators share is the host's workload (a job
        # started or ended there) or a host-level cause its own telemetry shows (fans, PSU), not
        # an accelerator anomaly, and host-mates share the workload, so one hot unit stands out
        self.hosts = np.asarray([f"{m}|{d}" for m, d in zip(inventory.accel_tags["model"], inventory.accel_tags["device"])],
                                dtype=object)
        self.host_offsets = PeerOffsets((len(inventory.accel_ids), len(PEER_FEATURES)), warmup=params.warmup)
        sizes = pd.Series(self.hosts).map(pd.Series(self.hosts).value_counts()).to_numpy()
        self.host_big = (sizes >= self.peer.min_group)[:, None]  # hosts with enough accelerators to compare
        self.stream_offsets = {m: PeerOffsets((len(self.tracker.ids[m]), len(cols)), warmup=params.warmup)
                               for m, (_, cols, _) in self.stream_peers.items()}
        self.intervals = 0

    def _stream_peer(self, s):
        """Peer detector for a non-accelerator stream: same kind (and `peer_attr`) at the same moment."""
        floors = np.array([MIN_SCALE_BY_UNIT.get(metric(m).unit, 1e-3) for m in s.peer_metrics])
        det = PeerGroupDetector(min_group=3, min_scale=floors).fit(np.zeros((3, len(floors))))
        groups = np.array([str(self.inventory.get(c).attrs.get(s.peer_attr, "")) for c in self.tracker.ids[s.measurement]],
                          dtype=object)
        return det, [s.metrics.index(m) for m in s.peer_metrics], groups

    def set_models(self, models: ModelBundle) -> None:
        """Swap in freshly trained models between intervals (online state is kept)."""
        self.models = models
        if models.peer:
            self.peer = models.peer
        if models.counters:
            self.counters = models.counters

    # ----- scoring --------------------------------------------------------------------------
    def score(self, batches) -> list[Finding]:
        f = self.tracker.observe(batches)
        self.intervals += 1
        out: list[Finding] = []
        for s in STREAMS:
            z, stuck, expected = self.banks[s.measurement].step(f.streams[s.measurement])
            ids = self.tracker.ids[s.measurement]
            out += self._emit(f.time_ns, ids, "univariate", z, s.metrics, f.streams[s.measurement], expected,
                              self.params.univariate_z)
            out += self._emit_stuck(f.time_ns, ids, stuck, s.metrics, f.streams[s.measurement])
            if s.measurement in self.stream_peers:
                det, cols, groups = self.stream_peers[s.measurement]
                X = f.streams[s.measurement][:, cols]
                pz, expected = self._peer_z(det, self.stream_offsets[s.measurement], X, groups)
                out += self._emit(f.time_ns, ids, "peer_group", pz, s.peer_metrics, X, expected, self.params.peer_z)
        ids = self.tracker.ids["accel"]
        X = f.accel[:, self._peer_cols]
        pz, expected = self._peer_z(self.peer, self.peer_offsets, X, self.groups)
        hz, _ = self._peer_z(self.peer, self.host_offsets, X, self.hosts)
        pz = np.where(self.host_big, hz, pz)
        out += self._emit(f.time_ns, ids, "peer_group", pz, PEER_FEATURES, X, expected, self.params.peer_z)
        cz = self.counters.feature_z(f.counter_delta)
        out += self._emit(f.time_ns, ids, "counter_trend", cz, ACCEL_COUNTERS, f.counter_delta,
                          np.broadcast_to(self.counters.rate_, cz.shape), self.params.counter_z)
        if self.models is not None:
            out += self._score_models(f, ids)
        return out

    @staticmethod
    def _peer_z(det: PeerGroupDetector, offsets: PeerOffsets, X, groups) -> tuple[np.ndarray, np.ndarray]:
        """Deviation from the peer median beyond the unit's own usual offset, in peer spreads;
        expected value = peer median + that offset. Learns the offsets afterwards (causal)."""
        dev, scale, med = det.signed_deviations(X, groups)
        z = offsets.z(dev, scale)
        offsets.update(dev, z)
        return z, med + offsets.offset

    def _score_models(self, f, ids) -> list[Finding]:
        out = []
        n = len(ids)
        thermal_z, expected_t = np.zeros(n), np.full(n, np.nan)
        if_z = np.zeros((n, len(WINDOW_FEATURE_NAMES)))
        if_exp = np.full(if_z.shape, np.nan)
        for model, rows in self._rows_by_model():
            tm = self.models.thermal.get(model)
            if tm is not None:
                T = f.thermal[rows]
                ok = ~np.isnan(T).any(axis=1)
                if ok.any():
                    thermal_z[rows[ok]] = np.maximum(tm.residual_z(T[ok]), 0.0)
                    expected_t[rows[ok]] = tm.expected(T[ok])
            forest = self.models.isolation.get(model)
            cols = self.models.isolation_columns.get(model)
            if forest is not None and self.intervals >= self.params.window:
                W = f.window[rows][:, cols]
                ok = ~np.isnan(W).any(axis=1)
                if ok.any():
                    total = np.maximum(-forest.score_samples(W[ok]), 0.0)
                    dev = forest.feature_deviation(W[ok])
                    share = dev / np.maximum(dev.sum(axis=1, keepdims=True), 1e-9)
                    sub = np.zeros((ok.sum(), len(WINDOW_FEATURE_NAMES)))
                    sub[:, cols] = share * total[:, None]
                    if_z[rows[ok]] = sub
                    exp = np.full(sub.shape, np.nan)
                    exp[:, cols] = forest.center_
                    if_exp[rows[ok]] = exp
        a = self.params.thermal_smoothing
        self._thermal_z = (1 - a) * self._thermal_z + a * thermal_z
        temp = f.thermal[:, -1:]
        out += self._emit(f.time_ns, ids, "thermal_residual", self._thermal_z[:, None], ("accel_temp_degc",), temp,
                          expected_t[:, None], self.params.thermal_z)
        out += self._emit(f.time_ns, ids, "isolation_forest", if_z, WINDOW_FEATURE_NAMES, f.window, if_exp,
                          self.params.isolation_z, total=if_z.sum(axis=1))
        return out + self._score_inlets(f)

    def _score_inlets(self, f) -> list[Finding]:
        """Rack inlets hotter than their rack's usual plus what the zone's heat explains."""
        racks = self.tracker.rack_index
        offset = np.array([self.models.inlet_offset.get(r, np.nan) for r in racks])
        z, expected = np.zeros(len(racks)), np.full(len(racks), np.nan)
        for zone, model in self.models.inlet.items():
            if zone not in self.tracker.zone_names:
                continue  # a zone that no longer exists in the site
            code = self.tracker.zone_names.index(zone)
            rows = np.flatnonzero((self.tracker.rack_zone == code) & np.isfinite(offset))
            X = f.rack_thermal[rows].copy()
            X[:, -1] -= offset[rows]
            ok = ~np.isnan(X).any(axis=1)
            if ok.any():
                z[rows[ok]] = np.maximum(model.residual_z(X[ok]), 0.0)
                expected[rows[ok]] = model.expected(X[ok]) + offset[rows[ok]]
        a = self.params.thermal_smoothing
        self._inlet_z = (1 - a) * self._inlet_z + a * z
        return self._emit(f.time_ns, racks, "thermal_residual", self._inlet_z[:, None], ("rack_inlet_temp_degc",),
                          f.rack_thermal[:, -1:], expected[:, None], self.params.thermal_z)

    def _rows_by_model(self):
        if not hasattr(self, "_model_rows"):
            self._model_rows = [(m, np.flatnonzero(self.accel_models == m)) for m in np.unique(self.accel_models)]
        return self._model_rows

    # ----- findings -------------------------------------------------------------------------
    def _emit(self, t_ns, ids, detector, z, names, observed, expected, z_alarm, total=None) -> list[Finding]:
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

    def _emit_stuck(self, t_ns, ids, stuck, names, observed) -> list[Finding]:
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
    counts = {level: pd.Series([k for k in ks if k is not None], dtype=object).value_counts()
              for level, ks in keys.items()}
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
