"""NAB scoring re-implementation, the causal novelty detector and `dcops eval nab`."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest

from dcops.analytics import nab
from dcops.analytics.detectors.novelty import novelty_scores
from tests.conftest import shared_data

STANDARD = {"tpWeight": 1.0, "fpWeight": 0.11, "fnWeight": 1.0}


def _reference_sweep(timestamps, scores, windows, cost, probation_percent=0.15):
    """A literal, loop-by-loop transcription of NAB's Sweeper.calcSweepScore."""
    timestamps = list(timestamps)
    windows = list(windows)

    def ss(x):
        return -1.0 if x >= 3.0 else 2 / (1 + math.exp(5 * x)) - 1.0

    max_tp = ss(-1.0)
    probation = min(math.floor(probation_percent * len(timestamps)), probation_percent * 5000)
    rows, cur, cur_name, cur_right, cur_width, prev_right, prev_width = [], None, None, None, None, None, None
    for i, (t, s) in enumerate(zip(timestamps, scores)):
        if windows and t == windows[0][0]:
            cur = windows.pop(0)
            cur_name = str(cur[0])
            cur_right = timestamps.index(cur[1])
            cur_width = float(cur_right - timestamps.index(cur[0]) + 1)
        if cur is not None:
            sweep = ss(-(cur_right - i + 1) / cur_width) * cost["tpWeight"] / max_tp
        else:
            pos = 3.0 if prev_right is None else abs(prev_right - i) / float(prev_width - 1)
            sweep = ss(pos) * cost["fpWeight"]
        rows.append((s, sweep, cur_name if i >= probation else "probationary"))
        if cur is not None and t == cur[1]:
            prev_right, prev_width, cur, cur_name = i, cur_width, None, None
    return rows


def _reference_best(all_rows, cost):
    """NAB's calcScoreByThreshold followed by the optimizer's pick of the best row."""
    rows = sorted([r for r in all_rows if r[2] != "probationary"], key=lambda r: r[0], reverse=True)
    parts = {"fp": 0.0}
    for r in rows:
        if r[2] is not None:
            parts[r[2]] = -cost["fnWeight"]
    results, cur = [], 1.1
    for s, sweep, name in rows:
        if s != cur:
            results.append((cur, sum(parts.values())))
            cur = s
        if name is None:
            parts["fp"] += sweep
        else:
            parts[name] = max(parts[name], sweep)
    results.append((cur, sum(parts.values())))
    return sorted(results, key=lambda r: r[1], reverse=True)[0]


def _synthetic_corpus(rng, n_files=3):
    scored, windows, ref_rows = {}, {}, []
    for k in range(n_files):
        n = int(rng.integers(300, 900))
        ts = [str(t) for t in pd.date_range("2020-01-01", periods=n, freq="5min")]
        scores = np.round(rng.random(n) ** 6, 3)  # many ties, as real detectors produce
        starts = sorted(rng.choice(np.arange(int(0.2 * n), n - 40), size=2, replace=False))
        if starts[1] - starts[0] < 30:
            starts = starts[:1]
        wins = [(ts[s], ts[s + 20]) for s in starts]
        name = f"dir/f{k}.csv"
        scored[name], windows[name] = (np.array(ts, dtype=object), scores), wins
        ref_rows += [(s, w, n_ if n_ in (None, "probationary") else f"{name}|{n_}")
                     for s, w, n_ in _reference_sweep(ts, scores, wins, STANDARD)]
    return scored, windows, ref_rows


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_corpus_score_matches_literal_nab_transcription(seed):
    scored, windows, ref_rows = _synthetic_corpus(np.random.default_rng(seed))
    result = nab.score_corpus(scored, windows, STANDARD)
    ref_threshold, ref_raw = _reference_best(ref_rows, STANDARD)
    assert result.threshold == pytest.approx(ref_threshold)
    assert result.raw == pytest.approx(ref_raw, abs=1e-9)
    assert sum(result.per_file.values()) == pytest.approx(ref_raw, abs=1e-9)
    n_windows = sum(len(w) for w in windows.values())
    assert result.null == pytest.approx(-n_windows)
    assert result.score == pytest.approx(100 * (ref_raw + n_windows) / (2 * n_windows))


def _one_file(n=1000, window=(500, 509)):
    ts = np.array([str(t) for t in pd.date_range("2021-01-01", periods=n, freq="5min")], dtype=object)
    return ts, {"a.csv": [(ts[window[0]], ts[window[1]])]}


def test_perfect_early_detection_scores_near_100_and_late_false_positive_costs():
    ts, windows = _one_file()
    scores = np.zeros(len(ts))
    scores[500] = 1.0
    perfect = nab.score_corpus({"a.csv": (ts, scores)}, windows, STANDARD)
    assert perfect.counts["tp"] == 1 and perfect.counts["fp"] == 0
    assert perfect.score == pytest.approx(100.0)  # first row of the window is worth tpWeight
    scores[900] = 1.0  # far after the window: a full -fpWeight
    with_fp = nab.score_corpus({"a.csv": (ts, scores)}, windows, STANDARD)
    assert with_fp.raw == pytest.approx(perfect.raw - 0.11, abs=1e-3)


def test_detections_in_the_probationary_period_are_ignored_and_late_ones_earn_less():
    ts, windows = _one_file()
    scores = np.zeros(len(ts))
    scores[10] = 1.0  # probation: 150 rows
    assert nab.score_corpus({"a.csv": (ts, scores)}, windows, STANDARD).counts["fp"] == 0
    early, late = np.zeros(len(ts)), np.zeros(len(ts))
    early[501], late[508] = 1.0, 1.0
    s_early = nab.score_corpus({"a.csv": (ts, early)}, windows, STANDARD).raw
    s_late = nab.score_corpus({"a.csv": (ts, late)}, windows, STANDARD).raw
    assert 0 < s_late < s_early < 1


def test_bad_inputs_name_the_file():
    ts, windows = _one_file()
    with pytest.raises(nab.NabError, match="a.csv"):
        nab.score_corpus({"a.csv": (ts, np.full(len(ts), np.nan))}, windows, STANDARD)
    with pytest.raises(nab.NabError, match="b.csv"):
        nab.score_corpus({"b.csv": (ts, np.zeros(len(ts)))}, windows, STANDARD)
    bad_windows = {"a.csv": [("1999-01-01 00:00:00", ts[5])]}
    with pytest.raises(nab.NabError, match="does not start and end"):
        nab.score_corpus({"a.csv": (ts, np.zeros(len(ts)))}, bad_windows, STANDARD)


def test_novelty_scores_are_causal_bounded_and_fire_once_on_a_level_shift():
    rng = np.random.default_rng(0)
    x = np.concatenate([10 + rng.normal(0, 1, 2000), 25 + rng.normal(0, 1, 500)])
    s = novelty_scores(x)
    assert np.all((s >= 0) & (s <= 1))
    assert s[2000:2005].max() > 0.3 and s[500:2000].max() < s[2000:2005].max()  # after warm-up
    assert np.count_nonzero(s[2010:] > 0.05) <= 1  # repeats suppressed
    for cut in (100, 1999, 2003, 2300):
        np.testing.assert_array_equal(novelty_scores(x[:cut]), s[:cut])


NAB_SUBSET = ["realKnownCause/ambient_temperature_system_failure.csv", "realAWSCloudwatch/ec2_network_in_257a54.csv"]


def test_eval_nab_cli_on_a_subset(tmp_path, capsys):
    from dcops.cli import main

    src = shared_data("nab")
    root = tmp_path / "nab"
    for rel in NAB_SUBSET:
        (root / "data" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src / "data" / rel, root / "data" / rel)
    windows = json.loads((src / "labels" / "combined_windows.json").read_text())
    (root / "labels").mkdir()
    (root / "labels" / "combined_windows.json").write_text(json.dumps({k: windows[k] for k in NAB_SUBSET}))
    (root / "config").mkdir()
    shutil.copy(src / "config" / "profiles.json", root / "config" / "profiles.json")
    assert main(["eval", "nab", "--data-dir", str(root), "--out", str(tmp_path / "out")]) == 0
    text = capsys.readouterr().out
    score = float(text.strip().splitlines()[-1].split(":")[-1])
    assert score > 60  # three windows, all found early with few false positives
    for rel in NAB_SUBSET:
        out = pd.read_csv(tmp_path / "out" / rel)
        assert list(out.columns) == ["timestamp", "value", "anomaly_score"]
        assert out["anomaly_score"].between(0, 1).all()
        raw = pd.read_csv(root / "data" / rel)
        assert len(out) == len(raw)
    # a truncated file gets the same scores on the rows it keeps
    rel = NAB_SUBSET[0]
    (root / "data" / rel).write_text("".join(open(src / "data" / rel).readlines()[:3001]))
    (root / "labels" / "combined_windows.json").unlink()
    assert main(["eval", "nab", "--data-dir", str(root), "--out", str(tmp_path / "cut")]) == 0
    full = pd.read_csv(tmp_path / "out" / rel)["anomaly_score"].to_numpy()
    cut = pd.read_csv(tmp_path / "cut" / rel)["anomaly_score"].to_numpy()
    np.testing.assert_allclose(cut, full[:3000], rtol=1e-9)


def test_bad_nab_csv_names_file_and_line(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("timestamp,value\n2020-01-01 00:00:00,1\n2020-01-01 00:05:00,abc\n")
    with pytest.raises(nab.NabError, match=r"x.csv: line 3"):
        nab.read_nab_csv(p)
