"""The NAB novelty vote on the fleet's series: held quantities (voltages, controlled supply
temperatures) beyond anything the unit has read, after NAB's probation, less what the unit's
group moved together; nothing from healthy units of the simulated site."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from dcops.analytics.detectors.novelty import (FLEET, NOVELTY, QUIET_ROWS, NoveltyBank, NoveltyDetector, novelty_scores,
                                              range_score)
from dcops.analytics.fleet import FleetScorer
from dcops.sim import Simulator

PAGE = 0.8  # accel_anomaly's min_score
START_NS = 1_765_029_600 * 10**9  # 2025-12-06 14:00 UTC: the simulated load follows the time of day


def test_a_series_that_starts_late_is_scored_from_its_own_first_value():
    rng = np.random.default_rng(3)
    x = np.cumsum(rng.normal(size=(300, 2)), axis=0)
    x[:40, 1] = np.nan  # its collector came up 40 rows late
    bank = NoveltyBank(2, block=1, quiet_rows=0)
    got = np.array([bank.update(row) for row in x])
    assert np.all(got[:40, 1] == 0.0)
    np.testing.assert_allclose(got[40:, 1], novelty_scores(x[40:, 1]), atol=1e-12)
    np.testing.assert_allclose(got[:, 0], novelty_scores(x[:, 0]), atol=1e-12)  # the other is untouched
    lo, hi = bank.seen()
    assert lo[1] == np.nanmin(x[:, 1]) and hi[1] == np.nanmax(x[:, 1])


def test_probation_counts_each_series_from_its_own_start():
    x = np.concatenate([np.tile([0.0, 1.0], 100), [50.0]])  # a flat series, then far beyond
    bank = NoveltyBank(2, quiet_rows=150)
    late = np.concatenate([np.full(100, np.nan), x[:101]])
    out = np.array([bank.update(np.array([a, b])) for a, b in zip(x, late)])
    assert out[-1, 0] > PAGE      # its 201st row: past probation, the record it never had
    assert out[-1, 1] == 0.0      # the same row is the late series' 101st: still learning
    with pytest.raises(ValueError, match="quiet_rows"):
        NoveltyBank(2, quiet_rows=-1)


def test_a_whole_volt_reading_one_step_outside_its_two_values_is_not_news():
    """UPS output voltage in whole volts, noise of 0.2 V: it sits on 230 for hours, now and then
    231; a 232 is one step more, far inside the smallest range a voltage is read in (8 V)."""
    x = np.full(2000, 230.0)
    x[::97] = 231.0
    x[-1] = 232.0
    floor = NoveltyBank(1, FLEET, quiet_rows=QUIET_ROWS, min_span=8.0)
    bare = NoveltyBank(1, FLEET, quiet_rows=QUIET_ROWS)
    s_floor = np.array([range_score(floor.update([v]))[0] for v in x])
    s_bare = np.array([range_score(bare.update([v]))[0] for v in x])
    assert s_bare[-1] >= 0.5          # in the range seen (1 V) it is a whole range beyond
    assert s_floor.max() < 0.2        # in the smallest range a voltage is read in, nothing
    sag = NoveltyBank(1, FLEET, quiet_rows=QUIET_ROWS, min_span=8.0)
    s = [range_score(sag.update([v]))[0] for v in np.concatenate([x[:-1], [200.0]])]
    assert s[-1] > PAGE               # a 30 V sag pages
    with pytest.raises(ValueError, match="min_span"):
        NoveltyBank(2, min_span=[1.0, -1.0])


def test_the_estimator_scores_beyond_its_range_and_streams_like_the_fleet():
    rng = np.random.default_rng(0)
    history = rng.normal(230.0, 0.5, size=(900, 2))
    det = NoveltyDetector().fit(history)
    assert det.predict(np.array([[230.0, 230.2]]))[0] == 1
    assert det.predict(np.array([[221.0, 230.0]]))[0] == -1
    stream = np.vstack([history, [[210.0, 230.0]]])  # an output sagging 20 V: six ranges beyond
    s = det.score_stream(stream)
    assert s[:QUIET_ROWS].max() == 0.0 and s[-1] > PAGE
    wide = NoveltyDetector(min_span=40.0).fit(history)  # a range read as 40 V wide: 20 V is inside
    assert wide.score_stream(stream)[-1] < 0.5


def _run(sim, scorer, n, tweak=None, at=None):
    """Score n intervals; (interval, component, score, explanation) of novelty findings."""
    got = []
    for k in range(n):
        if at is not None and k in at:
            at[k]()
        sim.step()
        batches = sim.batches()
        if tweak is not None:
            tweak(k, batches)
        got += [(k, f.component, f.score, f.explanation) for f in scorer.score(batches) if f.detector == "novelty"]
    return got


@pytest.fixture
def site(small_site):
    sim = Simulator(small_site, seed=4, start_ns=START_NS)
    return sim, FleetScorer(sim.inventory, None, detectors={"novelty": NOVELTY})


def test_a_failed_crac_is_news_once_and_healthy_units_never_are(site):
    sim, scorer = site
    crac = "CRAC-3"
    got = _run(sim, scorer, QUIET_ROWS + 120, at={QUIET_ROWS + 60: lambda: sim.inject("crac_failure", crac, 600)})
    paged = [g for g in got if g[2] >= PAGE]
    assert paged and {g[1] for g in paged} == {crac}, paged
    first = min(g[0] for g in paged)
    assert QUIET_ROWS + 60 <= first <= QUIET_ROWS + 63
    assert "cooling_supply_temp_degc" in paged[0][3] and "above anything" in paged[0][3]
    assert len(paged) <= 3  # one episode, not one finding per interval of the fault


def test_a_swing_the_whole_group_shares_is_not_one_units_news(site, small_site):
    """Every PDU of the row sees the supply voltage rise 25 V (a tap change upstream): no finding;
    the same rise on one PDU alone (a lost neutral) is news."""
    sim, scorer = site

    def swell(only=None):
        def tweak(k, batches):
            if k < QUIET_ROWS + 30:
                return
            i, b = next((i, b) for i, b in enumerate(batches) if b.measurement == "pdu")
            rows = np.ones(len(b), bool) if only is None else np.asarray(b.tags["device"]) == only
            v = b.fields["pdu_voltage_v"]
            batches[i] = replace(b, fields={**b.fields, "pdu_voltage_v": np.where(rows, v + 25.0, v)})
        return tweak

    assert [g for g in _run(sim, scorer, QUIET_ROWS + 60, swell()) if g[2] >= PAGE] == []
    sim2 = Simulator(small_site, seed=4, start_ns=START_NS)
    scorer2 = FleetScorer(sim2.inventory, None, detectors={"novelty": NOVELTY})
    paged = [g for g in _run(sim2, scorer2, QUIET_ROWS + 60, swell("PDU-B2")) if g[2] >= PAGE]
    assert {g[1] for g in paged} == {"PDU-B2"}


def test_a_ups_output_sagging_out_of_regulation_is_paged_by_novelty_alone(small_site):
    """An inverter losing regulation: the output drops 25 V (to about 205 V, -11 %) and stays.
    No rule watches the band between normal and lost (< 20 V), and to the online baseline 25 V
    is 12 spreads of a voltage (score 0.66, below the page); novelty pages it, on that UPS only."""
    sim = Simulator(small_site, seed=6, start_ns=START_NS)
    scorer = FleetScorer(sim.inventory)  # every detector the fleet runs
    start = QUIET_ROWS + 30
    paged = []
    for k in range(start + 90):
        sim.step()
        batches = sim.batches()
        if k >= start:
            i, b = next((i, b) for i, b in enumerate(batches) if b.measurement == "ups")
            v = b.fields["ups_output_voltage_v"]
            batches[i] = replace(b, fields={**b.fields, "ups_output_voltage_v": np.where(
                np.asarray(b.tags["device"]) == "UPS-A", v - 25.0, v)})
        paged += [(k, f.detector, f.component) for f in scorer.score(batches)
                  if f.score >= PAGE and f.component.startswith("UPS")]
    assert {(d, c) for _, d, c in paged} == {("novelty", "UPS-A")}, paged
    assert paged[0][0] <= start + 1 and len(paged) <= 3  # at once, and one episode


def test_a_slow_creep_extends_the_range_it_is_measured_against():
    """What novelty is not for: a value creeping 0.1 V per interval is never beyond all it has
    read by much (each reading extends the range); wear of that kind is `slow_drift`'s, on the
    quantities it watches."""
    x = np.concatenate([230.0 + np.round(np.random.default_rng(1).normal(0, 0.3, 900)), 230.0 - 0.1 * np.arange(300)])
    bank = NoveltyBank(1, FLEET, quiet_rows=QUIET_ROWS, min_span=8.0)
    assert max(range_score(bank.update([v]))[0] for v in x) < 0.5
