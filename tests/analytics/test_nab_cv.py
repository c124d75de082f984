"""NAB scoring on a hand-computed case, cross-validated parameter selection, and the novelty bank."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dcops.analytics import nab, nab_cv
from dcops.analytics.detectors.novelty import LEGACY, NoveltyBank, NoveltyParams, novelty_scores

STANDARD = {"tpWeight": 1.0, "fpWeight": 0.11, "fnWeight": 1.0}
LOW_FN = {"tpWeight": 1.0, "fpWeight": 0.11, "fnWeight": 2.0}


def _ts(n):
    return np.array([str(t) for t in pd.date_range("2021-01-01", periods=n, freq="5min")], dtype=object)


def test_hand_computed_nab_score():
    # 20 rows: probation floor(0.15 * 20) = 3 rows; one window, rows 10..13 (width 4).
    ts = _ts(20)
    windows = {"a.csv": [(ts[10], ts[13])]}
    scores = np.zeros(20)
    scores[1] = 1.0   # probation: never scored
    scores[5] = 0.5   # before the first window: -fpWeight = -0.11
    scores[11] = 0.9  # in the window: scaledSigmoid(-(13 - 11 + 1) / 4) / scaledSigmoid(-1) = 0.966989
    scores[16] = 0.7  # |13 - 16| / (4 - 1) = 1 past the window: scaledSigmoid(1) * 0.11 = -0.108528
    r = nab.score_corpus({"a.csv": (ts, scores)}, windows, STANDARD)
    # sweep: t=1.1 -> -1; t=0.9 -> 0.966989; t=0.7 -> 0.858461; t=0.5 -> 0.748461; t=0 -> worse
    assert r.threshold == 0.9
    assert r.raw == pytest.approx(0.966989, abs=1e-6)
    # the null (all-zero) detector is optimised the same way: flagging every row (threshold 0) finds
    # the window at its first row (+1) for 7 early FPs (-0.77) and 6 late ones (sigmoid-weighted,
    # -0.615656 together), -0.385656, better than flagging nothing (-1)
    assert r.null == pytest.approx(-0.385656, abs=1e-6) and r.perfect == 1.0
    assert r.score == pytest.approx(100 * (0.966989 + 0.385656) / (1 + 0.385656), abs=1e-4)
    assert r.counts == {"tp": 1, "fp": 0, "fn": 3, "tn": 13}
    # the window's detection scores lower than the late false positive: the best threshold takes both
    scores[11] = 0.6
    r = nab.score_corpus({"a.csv": (ts, scores)}, windows, STANDARD)
    assert r.threshold == 0.6 and r.raw == pytest.approx(0.966989 - 0.108528, abs=1e-6)
    # reward_low_FN_rate: null is -2 (one window missed at fnWeight 2)
    r = nab.score_corpus({"a.csv": (ts, scores)}, windows, LOW_FN)
    assert r.null == pytest.approx(-0.385656, abs=1e-6)  # flagging all still beats missing (-2)
    assert r.score == pytest.approx(100 * (0.858461 + 0.385656) / (1 + 0.385656), abs=1e-4)
    # only the best (earliest) detection in a window counts: row 12 (0.859793) adds nothing to row 11
    scores[12] = 0.65
    r2 = nab.score_corpus({"a.csv": (ts, scores)}, windows, STANDARD)
    assert r2.threshold == 0.6 and r2.raw == pytest.approx(0.966989 - 0.108528, abs=1e-6)


def _corpus(n_files=4):
    files, windows = [], {}
    for k in range(n_files):
        ts = _ts(400)
        name = f"{'catA' if k % 2 else 'catB'}/f{k}.csv"
        files.append(nab.NabFile(name, ts, np.zeros(400)))
        windows[name] = [(ts[200], ts[239])]
    return files, windows


def test_cross_validation_scores_held_out_files_with_choices_made_elsewhere():
    files, windows = _corpus()
    early, fp_heavy, none = {}, {}, {}
    for f in files:
        s = np.zeros(400)
        s[200] = 1.0
        early[f.relative_path] = s
        s2 = np.zeros(400)
        s2[[100, 120, 140, 300, 320]] = 1.0
        s2[230] = 0.9
        fp_heavy[f.relative_path] = s2
        none[f.relative_path] = np.zeros(400)
    # "overfit" is perfect on f0 only and bad elsewhere: choosing by the other files never picks it
    overfit = {p: (early[p] if p.endswith("f0.csv") else fp_heavy[p]) for p in early}
    scored = {"none": none, "fp_heavy": fp_heavy, "overfit": overfit, "early": early}
    r = nab_cv.cross_validate(files, windows, STANDARD, scored, default="none", scheme="file")
    assert r.in_sample == pytest.approx(100.0) and r.in_sample_candidate == "early"
    assert r.default == pytest.approx(0.0)
    assert set(r.chosen.values()) == {"early"} and r.out_of_sample == pytest.approx(100.0)
    assert r.strict == pytest.approx(100.0)
    # without the always-right candidate the held-out score is below the in-sample optimum
    del scored["early"]
    r = nab_cv.cross_validate(files, windows, STANDARD, scored, default="none", scheme="file")
    assert r.in_sample_candidate == "overfit"
    assert r.chosen["catB/f0.csv"] == "fp_heavy" and r.chosen["catA/f1.csv"] == "overfit"
    assert r.out_of_sample < r.in_sample and r.strict <= r.out_of_sample
    loco = nab_cv.cross_validate(files, windows, STANDARD, scored, default="none", scheme="category")
    assert set(loco.chosen) == {"catA", "catB"}
    with pytest.raises(nab.NabError, match="scheme"):
        nab_cv.cross_validate(files, windows, STANDARD, scored, default="none", scheme="month")


def test_novelty_grid_puts_the_default_first_and_keeps_all_history():
    grid = nab_cv.novelty_grid(NoveltyParams())
    first = next(iter(grid.values()))
    assert first == NoveltyParams() and len(grid) == 15
    assert all(0 in p.lookbacks for p in grid.values())  # all-history stays all-history
    with pytest.raises(ValueError, match="positive"):
        NoveltyParams(suppress=(0,))


def _bank_series():
    rng = np.random.default_rng(3)
    x = np.cumsum(rng.normal(size=(3000, 5)), axis=0)
    x[2000, 1] += 60  # a spike
    x[2500:, 2] += 40  # a level shift
    x[50:60, 3] = np.nan  # a gap
    x[:, 4] = 7.0  # flat: never scores
    return x


def test_novelty_bank_reproduces_the_batch_scores_exactly_with_one_row_blocks():
    x = _bank_series()
    p = NoveltyParams(lookbacks=(200, 800, 0), suppress=(50, 100))
    bank = NoveltyBank(5, p, block=1, quiet_rows=0)
    streamed = np.array([bank.update(row) for row in x])
    batch = np.column_stack([novelty_scores(x[:, j], p) for j in range(5)])
    np.testing.assert_allclose(streamed, batch, atol=1e-9)
    assert streamed[:, 4].max() == 0.0
    assert streamed[2000, 1] > 0.3 and streamed[2500, 2] > 0.3


def test_novelty_bank_with_blocks_finds_the_same_events():
    x = _bank_series()
    p = NoveltyParams(lookbacks=(200, 800, 0), suppress=(50, 100))
    bank = NoveltyBank(5, p, block=25, quiet_rows=0)
    streamed = np.array([bank.update(row) for row in x])
    batch = np.column_stack([novelty_scores(x[:, j], p) for j in range(5)])
    assert streamed[2000, 1] == pytest.approx(batch[2000, 1], rel=0.2)
    assert streamed[2500, 2] == pytest.approx(batch[2500, 2], rel=0.2)
    big = lambda s: set(zip(*np.nonzero(s > 0.3)))  # noqa: E731
    assert len(big(streamed) ^ big(batch)) <= 0.2 * len(big(batch))
    quiet = NoveltyBank(5, p, block=25)  # default: the first 750 rows only learn
    quiet_scores = np.array([quiet.update(row) for row in x])
    assert quiet_scores[:750].max() == 0.0
    np.testing.assert_allclose(quiet_scores[750:], streamed[750:])
    with pytest.raises(ValueError, match="n_series"):
        NoveltyBank(0)


def test_vote_is_causal_and_legacy_is_the_single_member_case():
    x = _bank_series()[:, 1]
    s = novelty_scores(x)
    for cut in (100, 1999, 2001, 2600):
        np.testing.assert_array_equal(novelty_scores(x[:cut]), s[:cut])
    assert LEGACY.lookbacks == (5000,) and LEGACY.suppress == (400,)
    assert np.all((novelty_scores(x, LEGACY) >= 0) & (novelty_scores(x, LEGACY) < 1))


def test_eval_nab_cv_prints_out_of_sample_scores_per_profile(tmp_path, capsys):
    import json
    import shutil

    from dcops.cli import main
    from tests.conftest import shared_data

    src = shared_data("nab")
    subset = ["realKnownCause/ambient_temperature_system_failure.csv", "realAWSCloudwatch/ec2_network_in_257a54.csv"]
    root = tmp_path / "nab"
    for rel in subset:
        (root / "data" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src / "data" / rel, root / "data" / rel)
    windows = json.loads((src / "labels" / "combined_windows.json").read_text())
    (root / "labels").mkdir()
    (root / "labels" / "combined_windows.json").write_text(json.dumps({k: windows[k] for k in subset}))
    (root / "config").mkdir()
    shutil.copy(src / "config" / "profiles.json", root / "config" / "profiles.json")
    assert main(["eval", "nab", "--data-dir", str(root), "--out", str(tmp_path / "out"), "--cv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {ln.split()[0]: [float(v) for v in ln.split()[1:]] for ln in lines
            if ln.split() and ln.split()[0] in ("standard", "reward_low_FP_rate", "reward_low_FN_rate")}
    assert set(rows) == {"standard", "reward_low_FP_rate", "reward_low_FN_rate"}
    for in_sample, default, lofo, lofo_strict, loco, loco_strict in rows.values():
        assert default <= in_sample + 1e-9  # the default is one of the grid's points
        assert all(-100 <= v <= 100 for v in (lofo, lofo_strict, loco, loco_strict))
    standard = float(lines[-1].split(":")[-1])
    assert standard == pytest.approx(rows["standard"][1], abs=0.01)  # the headline is the default's score
