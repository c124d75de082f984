"""Detector behaviour: each catches what it is for, and stays quiet on normal data."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from dcops.analytics.detectors import (
    CounterTrendDetector, FeatureIsolationForest, PeerGroupDetector, RobustStreamingDetector, ThermalResidualModel,
    z_to_score,
)
from dcops.analytics.detectors.multivariate import _flat_score_samples

rng = np.random.default_rng(0)


def test_streaming_detector_flags_spike_level_shift_and_stuck_sensor_causally():
    x = 40 + rng.normal(0, 0.3, (400, 1))
    x[250] += 6  # spike
    x[300:] += 5  # level shift
    det = RobustStreamingDetector(alpha=0.02).fit(x[:200])
    z = det.score_stream(x[200:])
    assert z[50] > 12 and z[100] > 10
    assert np.max(np.delete(z, [50] + list(range(100, 130)))[:100]) < 5
    stuck = np.full((5, 1), x[-1, 0])
    zs = det.score_stream(stuck)
    # a float signal with this noise repeats by chance once in thousands of steps: a few repeats are news
    assert zs[0] < det.stuck_z and zs[4] >= det.stuck_z
    fresh = RobustStreamingDetector(alpha=0.02).fit(x[:200])
    np.testing.assert_allclose(fresh.score_stream(x[200:260]), z[:60])  # causal: later rows change nothing


def test_thermal_residual_flags_hotter_than_power_and_inlet_explain():
    power = rng.uniform(100, 700, 2000)
    inlet = rng.uniform(20, 28, 2000)
    temp = inlet + 0.062 * power + rng.normal(0, 0.4, 2000)
    model = ThermalResidualModel().fit(np.column_stack([power, inlet, temp]))
    assert model.coef_ == pytest.approx([0.062, 1.0], abs=0.01)
    probe = np.array([[500.0, 24.0, 24 + 31 + 4.0], [500.0, 24.0, 24 + 31 - 4.0], [500.0, 24.0, 55.2]])
    z = -model.score_samples(probe)
    assert z[0] > 6 and z[1] == 0 and z[2] < 2  # colder than expected is not a cooling problem
    assert model.expected(probe)[0] == pytest.approx(55.0, abs=0.3)


def test_peer_group_compares_within_groups_at_the_same_moment():
    X = 60 + rng.normal(0, 0.5, (40, 2))
    X[:20] += 15  # a hotter rack: normal for its own peers
    X[33, 0] += 8  # one hot device among cooler peers
    groups = np.repeat(["rackA", "rackB"], 20)
    det = PeerGroupDetector().fit(X, groups=groups)
    z, med = det.deviations(X, groups)
    assert np.argmax(z.max(axis=1)) == 33 and z[33, 0] > 8
    assert z[:20].max() < 6  # rack A's level alone is not abnormal
    assert med[33, 0] == pytest.approx(60, abs=0.5)
    assert det.predict(X, groups)[33] == -1


def test_counter_trend_scores_bursts_and_first_moves_of_quiet_counters():
    normal = np.column_stack([rng.poisson(0.5, 500), np.zeros(500)])
    det = CounterTrendDetector().fit(normal)
    z = det.feature_z(np.array([[1, 0], [8, 0], [0, 1]]))
    assert z[0, 0] < 2 and z[1, 0] > 5 and z[2, 1] == det.zero_rate_z


def test_isolation_forest_flat_walk_matches_scikit_learn_and_ranks_outliers():
    X = rng.normal(size=(3000, 5))
    m = FeatureIsolationForest(n_estimators=30).fit(X)
    Y = np.vstack([rng.normal(size=(50, 5)), rng.normal(size=(5, 5)) + 6])
    np.testing.assert_allclose(_flat_score_samples(m.flat_, m._std(Y)), m.forest_.score_samples(m._std(Y)), rtol=1e-12)
    s = m.score_samples(Y)
    assert s[50:].max() < np.percentile(s[:50], 5)


def test_detectors_compose_with_pipelines_and_score_maps_to_unit_interval():
    X = rng.normal(size=(500, 3))
    pipe = make_pipeline(StandardScaler(), FeatureIsolationForest(n_estimators=20)).fit(X)
    assert pipe.predict(np.array([[10.0, 10, 10]]))[0] == -1
    base = IsolationForest(n_estimators=20, random_state=0).fit(X)
    assert base.predict(np.array([[10.0, 10, 10]]))[0] == -1
    s = z_to_score(np.array([0.0, 4.0, 8.0, 1e6, np.nan]), 4.0)
    np.testing.assert_allclose(s[:3], [0.0, 0.5, 0.75])
    assert s[3] <= 1.0 and s[4] == 0.0


def test_peer_offsets_tolerate_a_fixed_bias_but_not_a_new_excess():
    import warnings

    from dcops.analytics.detectors.peer import PeerOffsets

    det = PeerGroupDetector(min_scale=np.array([0.4])).fit(np.zeros((8, 1)))
    offs = PeerOffsets((8, 1), warmup=20)
    groups = np.zeros(8, dtype=int)
    bias = np.array([0, 0, 0, 0, 0, 0, 0, 6.0])  # unit 7 always reads 6 degC high
    local = np.random.default_rng(1)
    zs = []
    for t in range(120):
        X = (60 + bias + np.round(local.normal(0, 0.4, 8)))[:, None]  # whole degrees
        if t >= 100:
            X[3, 0] += 8  # unit 3 runs hot: a real excess
        dev, scale, _ = det.signed_deviations(X, groups)
        z = offs.z(dev, scale)
        offs.update(dev, z)
        zs.append(z[:, 0])
    zs = np.array(zs)
    raw = np.abs(6.0 / 0.4)
    assert raw > 8 and zs[20:, 7].max() < 4        # the biased unit is not flagged after warm-up
    assert zs[100:, 3].min() > 8                   # the hot one is, and stays flagged (not learned)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # all-NaN input: no "All-NaN slice" warning
        z, med = det.deviations(np.full((8, 1), np.nan), groups)
        assert (z == 0).all() and np.isnan(med).all()
        PeerGroupDetector().fit(np.full((6, 2), np.nan), groups=np.zeros(6))
