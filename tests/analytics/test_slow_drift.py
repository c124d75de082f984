"""Slow drift: wear found against the unit's own baseline, long before a threshold, and nothing
on healthy units whose readings differ, wander or change together."""

from __future__ import annotations

import numpy as np
import pytest

from dcops.analytics.detectors import z_to_score
from dcops.analytics.detectors.drift import SLOW_DRIFT, DriftState, SlowDriftDetector, neighbour_median
from dcops.analytics.fleet import FleetScorer, ScorerParams
from dcops.sim import Simulator

Z = ScorerParams().drift_z
PAGE = 0.8  # the anomaly rule's min_score
START_NS = 1_765_029_600 * 10**9  # 2025-12-06 14:00 UTC: the simulated load follows the time of day


def _paged(z) -> np.ndarray:
    return z_to_score(z, Z) >= PAGE


def _filters(rng, n, T, clog=None, start=36, span=350, wander=0.0):
    """(time, units, 1) filter pressure drops as CRACs report them: filters of different ages
    (90..150 Pa clean), 2 % noise, whole pascals; optionally slow airflow wander per unit
    (AR(1), 1000 s memory) and unit `clog`'s filter clogging as the simulator drives it."""
    clean = rng.uniform(90, 150, n)
    e = np.zeros(n)
    out = np.empty((T, n, 1))
    for t in range(T):
        f = np.ones(n)
        if clog is not None and t >= start:
            f[clog] = 1 - 0.55 * min((t - start) / span, 1.0)
        e = 0.99 * e + np.sqrt(1 - 0.99 ** 2) * rng.normal(0, wander, n)
        out[t, :, 0] = np.round(clean / f ** 2 * (1 + e) * (1 + rng.normal(0, 0.02, n)))
    return out


def _run(state, X, groups=None):
    return np.array([state.step(x, groups)[0] for x in X])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_clogging_filter_is_found_long_before_the_threshold_and_no_other_unit_is(seed):
    rng = np.random.default_rng(seed)
    n, clog = 8, seed + 2
    X = _filters(rng, n, 400, clog=clog)
    z = _run(DriftState((n, 1), [3.0]), X, np.zeros(n, dtype=np.int64))
    paged = _paged(z)[:, :, 0]
    assert not paged[:, np.arange(n) != clog].any()
    found = int(np.argmax(paged[:, clog]))
    assert paged[found, clog]
    threshold = int(np.argmax(X[:, clog, 0] > 250)) + 30  # the 250 Pa rule holds for 300 s
    assert found - 36 < 90 and found < threshold - 60  # ~15 min of drift, a quarter of the way to the threshold


@pytest.mark.parametrize("seed", [0, 1])
def test_a_day_of_healthy_units_with_wandering_airflow_pages_nothing(seed):
    rng = np.random.default_rng(seed)
    n = 8
    X = _filters(rng, n, 8640, wander=0.02)  # a day at 10 s; the wander is as large as the noise
    z = _run(DriftState((n, 1), [3.0]), X, np.zeros(n, dtype=np.int64))
    assert not _paged(z).any()


def test_a_change_the_neighbours_share_is_not_drift_and_one_failing_neighbour_moves_no_other():
    rng = np.random.default_rng(4)
    n, T = 6, 600
    sup = 18 + rng.normal(0, 0.2, n)
    X = np.round((sup[None, :] + rng.normal(0, 0.1, (T, n))) * 10)[:, :, None] / 10
    X[300:] += np.linspace(0, 2.0, 300)[:, None, None]  # the hall's setpoint raised by 2 degC over 50 min
    X[200:, 1] += 8.0  # unit 1's coil fails: its supply jumps 8 degC
    z = _run(DriftState((n, 1), [0.4]), X, np.zeros(n, dtype=np.int64))
    paged = _paged(z)[:, :, 0]
    assert paged[200:260, 1].any()
    assert not paged[:, np.arange(n) != 1].any()
    alone = _run(DriftState((n, 1), [0.4]), X)  # with no neighbours to ask, the shared rise is a departure
    assert _paged(alone)[:, 0, 0].any()


def test_a_lasting_new_level_is_taken_as_normal_within_a_day_and_a_repaired_unit_clears_in_minutes():
    rng = np.random.default_rng(5)
    n = 6
    X = _filters(rng, n, 2000 + 8640)
    X[2000:, 0] += 40.0   # unit 0 gets a filter of another type, for good
    X[2000:2400, 3] += 60.0  # unit 3 drifts (here: jumps) and its filter is changed back
    z = _run(DriftState((n, 1), [3.0]), X, np.zeros(n, dtype=np.int64))
    paged = _paged(z)[:, :, 0]
    assert paged[2100, 0] and not paged[-1, 0]
    assert paged[2300, 3] and not paged[2460:, 3].any()


def test_a_new_filter_is_the_new_normal_and_its_own_clogging_is_still_found():
    """A filter changed for a new one reads tens of pascals lower: no page, and the baseline
    follows it within minutes, so the next clogging is measured from the new filter."""
    rng = np.random.default_rng(9)
    n, T = 6, 1200
    X = _filters(rng, n, T)
    X[400:, 2] -= 45.0  # unit 2's filter changed at 400
    clean = X[390:400, 2, 0].mean() - 45.0
    ramp = np.clip((np.arange(T) - 800) / 350, 0, 1)  # ...and the new one clogs from 800
    X[:, 2, 0] = np.where(np.arange(T) >= 800, np.round(clean / (1 - 0.55 * ramp) ** 2 + rng.normal(0, 2, T)), X[:, 2, 0])
    state, groups = DriftState((n, 1), [3.0]), np.zeros(n, dtype=np.int64)
    before = _run(state, X[:800], groups)
    assert not _paged(before).any()
    assert abs(state.base[2, 0] - clean) < 3.0  # the baseline is the new filter's
    paged = _paged(_run(state, X[800:], groups))[:, :, 0]
    found = int(np.argmax(paged[:, 2]))
    assert paged[found, 2] and not paged[:, np.arange(n) != 2].any()
    assert X[800 + found, 2, 0] < 1.4 * clean  # found before its pressure drop rose by 40 %


def test_units_that_report_nothing_are_left_out():
    D = np.array([[1.0, np.nan], [2.0, 5.0], [3.0, np.nan], [10.0, 6.0], [4.0, 7.0]])
    med = neighbour_median(D, np.array([0, 0, 0, 0, -1]))
    np.testing.assert_array_equal(med[:, 0], [3.0, 3.0, 2.0, 2.0, np.nan])  # the others: 2 3 10, 1 3 10, 1 2 10, 1 2 3
    # of two others, the one nearer zero (one failing neighbour must not move it); of one, nothing
    np.testing.assert_array_equal(med[:, 1], [5.0, np.nan, 5.0, np.nan, np.nan])
    state = DriftState((3, 1), [3.0], warmup=2)
    for _ in range(5):
        z, _ = state.step(np.array([[np.nan], [100.0], [101.0]]))
        assert z[0, 0] == 0.0 and np.isfinite(z).all()


def test_the_estimator_scores_a_drift_in_its_stream_and_not_its_history():
    rng = np.random.default_rng(6)
    history = 120 + rng.normal(0, 2.4, (200, 1))
    det = SlowDriftDetector(min_scale=3.0).fit(history)
    later = 120 + np.linspace(0, 60, 200)[:, None] + rng.normal(0, 2.4, (200, 1))
    z = det.score_stream(later)
    assert z[:20].max() < Z and z[-20:].min() > 2.32 * Z
    assert det.predict(history).mean() > 0.9


def test_the_fleet_finds_a_simulated_clogging_filter_before_its_threshold_rule(small_site):
    """The simulator's own filter (its age, noise and resolution) through the fleet scorer."""
    sim = Simulator(small_site, seed=2, start_ns=START_NS)
    scorer = FleetScorer(sim.inventory, None, detectors={"slow_drift": SLOW_DRIFT})
    crac = next(c.name for c in sim.inventory.of_kind("cooling") if c.attrs.get("unit_kind") != "cdu")
    found, crossed, others = None, None, []
    for k in range(400):
        if k == 36:
            sim.inject("clogged_filter", crac, 3500)
        sim.step()
        batches = sim.batches()
        for f in scorer.score(batches):
            if f.score >= PAGE:
                if f.component == crac:
                    found = k if found is None else found
                else:
                    others.append(f)
        cooling = next(b for b in batches if b.measurement == "cooling")
        dp = cooling.fields["cooling_filter_dp_pa"][list(cooling.tags["device"]).index(crac)]
        crossed = k if crossed is None and dp > 250 else crossed
    assert not others
    assert found is not None and (crossed is None or found < crossed)


def test_neighbour_consensus_matches_its_definition_on_random_groups():
    """Groups of one size are computed together; the result is the per-row definition."""
    rng = np.random.default_rng(8)

    def by_definition(D, groups):
        out = np.full(D.shape, np.nan)
        for g in np.unique(groups[groups >= 0]):
            rows = np.flatnonzero(groups == g)
            for i, r in enumerate(rows):
                for j in range(D.shape[1]):
                    c = np.delete(D[rows, j], i)
                    c = c[~np.isnan(c)]
                    if len(c) >= 3:
                        out[r, j] = np.median(c)
                    elif len(c) == 2:
                        out[r, j] = c[np.argmin(np.abs(c))]
        return out

    for _ in range(100):
        n = int(rng.integers(1, 30))
        D = rng.normal(0, 1, (n, 3))
        D[rng.random((n, 3)) < 0.3] = np.nan
        groups = rng.integers(-1, 6, n)
        np.testing.assert_array_equal(neighbour_median(D, groups), by_definition(D, groups))


def test_zone_mates_of_one_kind_are_the_neighbours():
    from dcops.analytics.detectors.drift import drift_groups
    from dcops.data import site_file
    from dcops.site import load_site
    from dcops.topology import Inventory

    inv = Inventory(load_site(site_file("demo-site.yaml")))
    ids = [c.name for c in inv.of_kind("cooling")]
    for attr in ("unit_kind", ""):
        g = dict(zip(ids, drift_groups(inv, ids, attr)))
        assert g["CRAC-H1-1"] == g["CRAC-H1-3"] != g["CRAC-H1-4"] == g["CRAC-H1-6"] != g["CRAC-H2-1"]
        assert g["CDU-H3-1"] == g["CDU-H3-2"] == -1  # a zone of two: each on its own baseline
