"""Numenta Anomaly Benchmark (NAB): corpus reading, causal scoring runs, and NAB's scoring.

The scoring is a re-implementation of NAB 1.x (`nab/sweeper.py`, `nab/optimizer.py`,
`nab/runner.py::normalize`), kept line-for-line in its semantics:

- the probationary period of a file is `min(floor(0.15 * n), 0.15 * 5000)` rows; rows in it are
  never scored;
- a row inside an anomaly window scores `scaledSigmoid(-(right - i + 1) / width) * tpWeight /
  scaledSigmoid(-1)` where `scaledSigmoid(x) = 2 / (1 + exp(5x)) - 1` (-1 for x >= 3); a window
  is worth the best of its detected rows, or `-fnWeight` when none is detected;
- a row outside windows scores `scaledSigmoid(|prevRight - i| / (prevWidth - 1)) * fpWeight`
  after a window and `-fpWeight` before the first one; every detected one counts;
- one threshold for the whole corpus, chosen as NAB's optimizer does: sort all scorable rows
  by anomaly score, sweep every distinct score as a threshold (detections are `score >=
  threshold`), keep the best total;
- normalised score = `100 * (raw - null) / (perfect - null)` with `perfect = windows *
  tpWeight` and `null` the raw score of the all-zero (null) detector, optimised the same way.

One deliberate difference: NAB crashes (`None.score`) when the chosen threshold lies below every
scorable score of some file; here that file simply counts as all-detected, which is what the
threshold means.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "NabError", "NabFile", "SweptFile", "CorpusScore", "read_nab_csv", "nab_files", "load_windows",
    "load_profile", "sweep_file", "score_corpus", "run_detector", "write_scores",
]

PROBATION_PERCENT = 0.15


class NabError(ValueError):
    """A NAB data, label or profile file that cannot be used; the message names it."""


@dataclass(frozen=True)
class NabFile:
    relative_path: str  # e.g. "realKnownCause/nyc_taxi.csv", as in the labels file
    timestamps: np.ndarray  # str, as written in the file
    values: np.ndarray  # float64


def read_nab_csv(path: Path, relative_path: str | None = None) -> NabFile:
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype={"timestamp": str})
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise NabError(f"{path}: cannot read NAB csv: {exc}") from None
    missing = {"timestamp", "value"} - set(frame.columns)
    if missing:
        raise NabError(f"{path}: missing column(s) {sorted(missing)} (need timestamp,value)")
    values = pd.to_numeric(frame["value"], errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise NabError(f"{path}: line {int(bad[0]) + 2}: value {frame['value'].iloc[bad[0]]!r} is not a number")
    return NabFile(relative_path or path.name, frame["timestamp"].to_numpy(dtype=object), values)


def nab_files(data_dir: Path) -> list[NabFile]:
    """Every CSV under `data_dir` (NAB's `data/` folder), sorted by relative path."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise NabError(f"{data_dir}: NAB data folder not found")
    paths = sorted(p for p in data_dir.rglob("*.csv") if p.is_file())
    if not paths:
        raise NabError(f"{data_dir}: no .csv files")
    return [read_nab_csv(p, p.relative_to(data_dir).as_posix()) for p in paths]


def load_windows(path: Path) -> dict[str, list[tuple[str, str]]]:
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise NabError(f"{path}: cannot read windows: {exc}") from None
    if not isinstance(raw, dict):
        raise NabError(f"{path}: expected an object mapping file -> [[start, end], ...]")
    out = {}
    for name, windows in raw.items():
        if not isinstance(windows, list) or any(not isinstance(w, list) or len(w) != 2 for w in windows):
            raise NabError(f"{path}: {name}: windows must be [[start, end], ...]")
        out[name] = [(str(a), str(b)) for a, b in windows]
    return out


def load_profile(path: Path, name: str = "standard") -> dict[str, float]:
    try:
        profiles = json.loads(Path(path).read_text())
        matrix = profiles[name]["CostMatrix"]
        return {k: float(matrix[k]) for k in ("tpWeight", "fpWeight", "fnWeight")}
    except (OSError, ValueError) as exc:
        raise NabError(f"{path}: cannot read profiles: {exc}") from None
    except (KeyError, TypeError) as exc:
        raise NabError(f"{path}: profile {name!r} lacks CostMatrix field {exc}") from None


def _scaled_sigmoid(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    out = 2.0 / (1.0 + np.exp(np.clip(5.0 * x, -700, 700))) - 1.0
    return np.where(x >= 3.0, -1.0, out)


def _canon_time(ts) -> np.ndarray:
    """Timestamps as datetime64[ns] so '2014-02-26 13:45:00' matches '...13:45:00.000000'."""
    return pd.to_datetime(pd.Series(np.asarray(ts, dtype=object)), format="mixed").to_numpy()


@dataclass(frozen=True)
class SweptFile:
    """Per-row NAB bookkeeping for one file: sweep score and window id (-1 none, -2 probation)."""

    relative_path: str
    scores: np.ndarray
    sweep: np.ndarray
    window: np.ndarray
    n_windows: int


def sweep_file(relative_path: str, timestamps, scores, windows: Sequence[tuple[str, str]],
               cost: Mapping[str, float], probation_percent: float = PROBATION_PERCENT) -> SweptFile:
    """NAB's `Sweeper.calcSweepScore` for one file, vectorised."""
    scores = np.asarray(scores, dtype=np.float64)
    n = scores.shape[0]
    if len(timestamps) != n:
        raise NabError(f"{relative_path}: {len(timestamps)} timestamps but {n} scores")
    if not np.all(np.isfinite(scores)):
        raise NabError(f"{relative_path}: anomaly scores contain NaN or inf (row {int(np.flatnonzero(~np.isfinite(scores))[0])})")
    t = _canon_time(timestamps)
    idx = np.arange(n)
    window_id = np.full(n, -1, dtype=np.int64)
    sweep = np.full(n, -cost["fpWeight"])  # before any window: scaledSigmoid(3.0) = -1
    max_tp = float(_scaled_sigmoid(-1.0))
    prev_right = prev_width = None
    for w, (start, end) in enumerate(windows):
        hits_l = np.flatnonzero(t == _canon_time([start])[0])
        hits_r = np.flatnonzero(t == _canon_time([end])[0])
        if hits_l.size == 0 or hits_r.size == 0:
            raise NabError(f"{relative_path}: window {start} .. {end} does not start and end on rows of the file")
        left, right = int(hits_l[0]), int(hits_r[0])
        width = float(right - left + 1)
        inside = slice(left, right + 1)
        window_id[inside] = w
        sweep[inside] = _scaled_sigmoid(-(right - idx[inside] + 1) / width) * cost["tpWeight"] / max_tp
        if prev_right is not None:  # rows between the previous window and this one
            gap = slice(prev_right + 1, left)
            sweep[gap] = _scaled_sigmoid(np.abs(prev_right - idx[gap]) / (prev_width - 1.0)) * cost["fpWeight"]
        prev_right, prev_width = right, width
    if prev_right is not None:
        tail = slice(prev_right + 1, n)
        sweep[tail] = _scaled_sigmoid(np.abs(prev_right - idx[tail]) / (prev_width - 1.0)) * cost["fpWeight"]
    probation = min(math.floor(probation_percent * n), probation_percent * 5000)
    window_id[idx < probation] = -2
    return SweptFile(relative_path, scores, sweep, window_id, len(windows))


@dataclass(frozen=True)
class CorpusScore:
    threshold: float
    raw: float
    null: float
    perfect: float
    score: float  # normalised, 0 = null detector, 100 = perfect
    per_file: Mapping[str, float]
    counts: Mapping[str, int]  # tp, fp, fn, tn rows at the threshold


def _threshold_curve(files: Sequence[SweptFile], cost: Mapping[str, float]):
    """NAB's `calcScoreByThreshold` over the whole corpus: (thresholds, totals) in sweep order.

    Vectorised: rows sorted by descending score (stable, as NAB's sort); an FP row adds its sweep
    score, a window row adds how much it raises its window's best so far; the total at threshold
    t is the running sum up to the last row scoring >= t.
    """
    keep = [f.window != -2 for f in files]
    scores = np.concatenate([f.scores[k] for f, k in zip(files, keep)])
    sweep = np.concatenate([f.sweep[k] for f, k in zip(files, keep)])
    offsets = np.cumsum([0] + [f.n_windows for f in files])
    window = np.concatenate([np.where(f.window[k] >= 0, f.window[k] + o, -1) for f, k, o in zip(files, keep, offsets)])
    order = np.argsort(-scores, kind="stable")
    s_sorted, w_sorted, sw_sorted = scores[order], window[order], sweep[order]
    gain = np.where(w_sorted < 0, sw_sorted, 0.0)
    scorable_windows = np.unique(window[window >= 0])
    for w in scorable_windows:
        pos = np.flatnonzero(w_sorted == w)
        best = np.maximum.accumulate(np.concatenate([[-cost["fnWeight"]], sw_sorted[pos]]))
        gain[pos] = np.diff(best)
    base = -cost["fnWeight"] * len(scorable_windows)
    running = base + np.cumsum(gain)
    if s_sorted.size == 0:
        return np.array([1.1]), np.array([base])
    last_of_group = np.flatnonzero(np.append(s_sorted[1:] != s_sorted[:-1], True))
    thresholds = np.concatenate([[1.1], s_sorted[last_of_group]])
    totals = np.concatenate([[base], running[last_of_group]])
    return thresholds, totals


def _file_score(f: SweptFile, threshold: float, cost: Mapping[str, float]) -> tuple[float, dict]:
    scorable = f.window != -2
    det = scorable & (f.scores >= threshold)
    inside = f.window >= 0
    total = float(f.sweep[det & ~inside].sum())
    for w in np.unique(f.window[scorable & inside]):
        hit = det & (f.window == w)
        total += float(f.sweep[hit].max()) if hit.any() else -cost["fnWeight"]
    counts = {"tp": int((det & inside).sum()), "fp": int((det & ~inside).sum()),
              "fn": int((scorable & inside & ~det).sum()), "tn": int((scorable & ~inside & ~det).sum())}
    return total, counts


def _optimise(files: Sequence[SweptFile], cost) -> tuple[float, float]:
    thresholds, totals = _threshold_curve(files, cost)
    best = int(np.argmax(totals))  # first of equal maxima, as NAB's stable sort picks
    return float(thresholds[best]), float(totals[best])


def score_corpus(scored: Mapping[str, tuple[np.ndarray, np.ndarray]],
                 windows: Mapping[str, Sequence[tuple[str, str]]], cost: Mapping[str, float],
                 probation_percent: float = PROBATION_PERCENT) -> CorpusScore:
    """NAB score of a detector: `scored` maps relative path -> (timestamps, anomaly scores)."""
    missing = sorted(set(scored) - set(windows))
    if missing:
        raise NabError(f"no labelled windows for {missing[:3]} (labels must name every scored file)")
    files = [sweep_file(p, ts, s, windows[p], cost, probation_percent) for p, (ts, s) in sorted(scored.items())]
    threshold, raw = _optimise(files, cost)
    nulls = [SweptFile(f.relative_path, np.zeros_like(f.scores), f.sweep, f.window, f.n_windows) for f in files]
    _, null = _optimise(nulls, cost)
    perfect = sum(f.n_windows for f in files) * cost["tpWeight"]
    per_file, counts = {}, {"tp": 0, "fp": 0, "fn": 0, "tn": 0}
    for f in files:
        per_file[f.relative_path], c = _file_score(f, threshold, cost)
        for k in counts:
            counts[k] += c[k]
    score = 100.0 * (raw - null) / (perfect - null) if perfect != null else 0.0
    return CorpusScore(threshold, raw, null, perfect, score, per_file, counts)


def run_detector(files: Sequence[NabFile], make_scores: Callable[[NabFile], np.ndarray]) -> dict[str, np.ndarray]:
    """Score every file with a causal scorer (values -> scores in 0..1, one per row)."""
    out = {}
    for f in files:
        s = np.asarray(make_scores(f), dtype=np.float64)
        if s.shape != f.values.shape or not np.all((s >= 0) & (s <= 1)):
            raise NabError(f"{f.relative_path}: detector must return one score in 0..1 per row")
        out[f.relative_path] = s
    return out


def write_scores(out_dir: Path, f: NabFile, scores: np.ndarray) -> Path:
    """OUTDIR/<relative path> with columns timestamp,value,anomaly_score."""
    path = Path(out_dir) / f.relative_path
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"timestamp": f.timestamps, "value": f.values, "anomaly_score": scores}).to_csv(
        path, index=False, float_format="%.10g")
    return path
