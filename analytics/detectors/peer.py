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
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted, validate_data

from dcops.analytics.detectors.base import OutlierDetector
from dcops.analytics.detectors.spec import DetectorSpec, Fitted, TrainingSetup
from dcops.analytics.features import ACCEL_MODEL_FEATURES, STREAMS, unit_floors
from dcops.analytics.tracker import peer_groups

if TYPE_CHECKING:
    from dcops.analytics.fleet import FleetScorer
    from dcops.analytics.tracker import IntervalFeatures
    from dcops.findings import Finding

__all__ = ["PeerGroupDetector", "PeerOffsets", "group_median_mad", "PEER_FEATURES", "PEER_GROUP", "peer_min_scale"]

# Not clocks: an idle accelerator drops to its idle clock, which is a state, not a fault.
PEER_FEATURES = ("accel_temp_degc", "accel_mem_temp_degc", "accel_fan_pct")


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

    def update(self, dev: np.ndarray, z: np.ndarray, scale: np.ndarray | None = None) -> None:
        """Learn the offsets from `dev`. With `scale` (the peers' spread), a unit abnormal only
        against its learned offset but ordinary against its peers (within `learn_z` spreads of
        their median) has come back to the pack: its old offset is void and it takes the new one
        at once. An offset that crept in with a slow drift (a clogging filter, 100 Pa above the
        other units before its change) would otherwise be held for ever once the unit is back."""
        known = ~np.isnan(dev)
        ok = known & ((self.n < self.warmup) | (z < self.learn_z))
        a = np.where(self.n < self.warmup, 1.0 / (self.n + 1.0), self.alpha)
        if scale is not None:
            back = known & ~ok & (np.abs(np.nan_to_num(dev)) < self.learn_z * scale)
            a = np.where(back, 1.0, a)
            ok = ok | back
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


# ----- in the fleet ---------------------------------------------------------------------------
def peer_min_scale() -> np.ndarray:
    """Unit floors for the accelerator peer spread: NPU tools report whole degrees, so a quiet
    group can have a spread of 0, and 1 degC against it must not read as 1,000 spreads."""
    return unit_floors(PEER_FEATURES)


def _untrained() -> PeerGroupDetector:
    return PeerGroupDetector(min_scale=peer_min_scale()).fit(np.zeros((4, len(PEER_FEATURES))))


def peer_z(det: PeerGroupDetector, offsets: PeerOffsets, X, groups) -> tuple[np.ndarray, np.ndarray]:
    """Deviation from the peer median beyond the unit's own usual offset, in peer spreads;
    expected value = peer median + that offset. Learns the offsets afterwards (causal)."""
    dev, scale, med = det.signed_deviations(X, groups)
    z = offsets.z(dev, scale)
    offsets.update(dev, z, scale)
    return z, med + offsets.offset


class _PeerPart:
    """Accelerators against same-model peers on their host (or in their rack or row when the
    host has too few), and each stream's `peer_metrics` against same-kind peers; the trained
    state is the accelerators' detector (peer floors from history)."""

    def __init__(self, fleet: FleetScorer, state: PeerGroupDetector | None) -> None:
        inv, warmup = fleet.inventory, fleet.params.warmup
        self.fleet = fleet
        self.det = state if state is not None else _untrained()
        self.streams = {s.measurement: self._stream_peer(s) for s in STREAMS if s.peer_metrics}
        self.groups = peer_groups(inv)
        self.cols = [ACCEL_MODEL_FEATURES.index(f) for f in PEER_FEATURES]
        # each unit's usual offset from its peers (sensor bias, position in the row): peers compare
        # the deviation beyond it, not raw values
        self.offsets = PeerOffsets((len(inv.accel_ids), len(PEER_FEATURES)), warmup=warmup)
        # Accelerators of a host with enough of them are compared with their host-mates instead of
        # the rack: a shift all of a host's accelerators share is the host's workload (a job
        # started or ended there) or a host-level cause its own telemetry shows (fans, PSU), not
        # an accelerator anomaly, and host-mates share the workload, so one hot unit stands out
        self.hosts = np.asarray([f"{m}|{d}" for m, d in zip(inv.accel_tags["model"], inv.accel_tags["device"])],
                                dtype=object)
        self.host_offsets = PeerOffsets((len(inv.accel_ids), len(PEER_FEATURES)), warmup=warmup)
        sizes = pd.Series(self.hosts).map(pd.Series(self.hosts).value_counts()).to_numpy()
        self.host_big = (sizes >= self.det.min_group)[:, None]  # hosts with enough accelerators to compare
        self.stream_offsets = {m: PeerOffsets((len(fleet.tracker.ids[m]), len(cols)), warmup=warmup)
                               for m, (_, cols, _) in self.streams.items()}

    def _stream_peer(self, s):
        """Peer detector for a non-accelerator stream: same kind (and `peer_attr`) at the same moment."""
        floors = unit_floors(s.peer_metrics)
        det = PeerGroupDetector(min_group=3, min_scale=floors).fit(np.zeros((3, len(floors))))
        inv = self.fleet.inventory
        groups = np.array([str(inv.get(c).attrs.get(s.peer_attr, "")) for c in self.fleet.tracker.ids[s.measurement]],
                          dtype=object)
        return det, [s.metrics.index(m) for m in s.peer_metrics], groups

    def set_model(self, state: PeerGroupDetector | None) -> None:
        if state is not None:
            self.det = state

    def score(self, f: IntervalFeatures) -> list[Finding]:
        fleet, out = self.fleet, []
        z_alarm = fleet.params.peer_z
        for s in STREAMS:
            if s.measurement in self.streams:
                det, cols, groups = self.streams[s.measurement]
                X = f.streams[s.measurement][:, cols]
                pz, expected = peer_z(det, self.stream_offsets[s.measurement], X, groups)
                out += fleet.emit(f.time_ns, fleet.tracker.ids[s.measurement], "peer_group", pz, s.peer_metrics, X,
                                  expected, z_alarm)
        X = f.accel[:, self.cols]
        pz, expected = peer_z(self.det, self.offsets, X, self.groups)
        hz, _ = peer_z(self.det, self.host_offsets, X, self.hosts)
        pz = np.where(self.host_big, hz, pz)
        return out + fleet.emit(f.time_ns, fleet.tracker.ids["accel"], "peer_group", pz, PEER_FEATURES, X, expected,
                                z_alarm)


class _PeerTrainer:
    """Peer floors from every fifth interval, each interval's groups kept apart."""

    def __init__(self, setup: TrainingSetup) -> None:
        self.groups = peer_groups(setup.inventory).astype(str)
        self.cols = [ACCEL_MODEL_FEATURES.index(f) for f in PEER_FEATURES]
        self.rows: list[np.ndarray] = []
        self.row_groups: list[np.ndarray] = []

    def observe(self, k: int, f: IntervalFeatures) -> None:
        if k % 5 == 0:
            self.rows.append(f.accel[:, self.cols])
            self.row_groups.append(np.char.add(self.groups, f"@{k}"))

    def fit(self, previous) -> Fitted:
        P = np.concatenate(self.rows)
        det = PeerGroupDetector(min_scale=peer_min_scale()).fit(P, groups=np.concatenate(self.row_groups))
        return Fitted(det, {"peer": len(P)})


PEER_GROUP = DetectorSpec(
    "peer_group", PeerGroupDetector,
    "accelerators against same-model peers on their host, rack or row, and sensors against same-kind peers",
    PEER_FEATURES, _PeerPart, _PeerTrainer, PeerGroupDetector)
