"""Multi-scale causal novelty, voted over memory lengths: how far a value lies outside all it has seen.

Used for single series (NAB) and, on the fleet, for quantities held level (`NOVELTY`, below). One
member of the vote compares the value and its moving averages (`scales`) with the range of
their own past over one lookback; a point beyond that range scores by how far beyond it lies,
relative to the range (`log1p`, squashed into [0, 1)). After a score the member stays quiet
until something exceeds its highest score of the last `suppress` rows, so a level shift raises
one alarm, not hundreds. The vote is the mean over all members: every lookback in `lookbacks`
(0 = all history) times every suppression length in `suppress`. The score is the vote relative
to the series' own record, `vote / (vote + highest earlier vote)`: a series' first-ever novelty
scores 1, one as large as its record 1/2, a small one after a big one little. That calibrates
every series against its own history, so one threshold serves series that rarely and series
that often see new values (on NAB it lifts the threshold-transfer score across categories from
57 to 72, see the notes).

Why a vote and not one tuned setting: on NAB one lookback/suppression pair chosen on the data
scores 76 in sample but 66 when chosen on the other files (leave-one-file-out, see
`dcops.analytics.nab_cv`); the vote over doubling ladders has no length to tune, and its
neighbours (ladders scaled 0.5x..2x) score 71-75 on the same files.

Everything is computed with trailing windows only, so the score of row i depends on rows <= i:
a truncated series gets the same scores on the rows it keeps. `NoveltyBank` is the same
arithmetic for a bank of series updated one row at a time (the fleet's metrics), vectorised over
the series, with rolling extremes kept per block of rows so memory stays O(series x blocks).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted, validate_data

from dcops.analytics.detectors.base import OutlierDetector, z_to_score
from dcops.analytics.detectors.drift import drift_groups, group_batches, neighbour_median
from dcops.analytics.detectors.spec import DetectorSpec
from dcops.analytics.features import STREAMS, unit_floors
from dcops.findings import Contribution

if TYPE_CHECKING:
    from dcops.analytics.fleet import FleetScorer
    from dcops.analytics.tracker import IntervalFeatures
    from dcops.findings import Finding
    from dcops.topology import Inventory

__all__ = ["NoveltyParams", "LEGACY", "FLEET", "novelty_scores", "NoveltyBank", "NoveltyDetector", "NOVELTY",
           "held_groups", "range_score"]


@dataclass(frozen=True)
class NoveltyParams:
    scales: tuple[int, ...] = (1, 20)  # moving-average lengths compared with their own past
    lookbacks: tuple[int, ...] = (3000, 6000, 12000, 0)  # rows of past that count as "seen"; 0 = all
    suppress: tuple[int, ...] = (100, 200, 400, 800, 1600)  # rows a score stays the one to beat
    min_history: int = 30  # rows before anything scores
    record_relative: bool = True  # final score = vote / (vote + the series' highest vote so far)

    def __post_init__(self):
        if not self.scales or not self.lookbacks or not self.suppress:
            raise ValueError("NoveltyParams: scales, lookbacks and suppress need at least one length each")
        if any(k < 1 for k in self.scales + self.suppress) or any(lb < 0 for lb in self.lookbacks):
            raise ValueError(f"NoveltyParams: lengths must be positive (lookback 0 = all history): {self}")
        if self.min_history < 2:
            raise ValueError(f"NoveltyParams: min_history must be >= 2, got {self.min_history}")

    def scaled(self, lookback: float = 1.0, suppress: float = 1.0) -> "NoveltyParams":
        """The same ladders stretched (cross-validation neighbours); all-history stays all-history."""
        return replace(self, lookbacks=tuple(int(round(lb * lookback)) for lb in self.lookbacks),
                       suppress=tuple(max(1, int(round(s * suppress))) for s in self.suppress))


# The single-setting detector this module used before the vote (76.15 in sample on the NAB subset).
LEGACY = NoveltyParams(scales=(1, 20), lookbacks=(5000,), suppress=(400,), min_history=30, record_relative=False)


def _record_relative(vote: np.ndarray, record: np.ndarray) -> np.ndarray:
    """vote / (vote + record): 1 for a series' first-ever score, 1/2 for one equal to its record."""
    return np.where(vote > 0, vote / np.maximum(vote + record, 1e-300), 0.0)


def _squash(raw):
    s = np.log1p(raw)
    return s / (1.0 + s)


def _beyond_range(series: pd.Series, lookback: int, min_history: int) -> np.ndarray:
    prev = series.shift(1)
    roll = prev.expanding(min_periods=min_history) if lookback == 0 else prev.rolling(lookback, min_periods=min_history)
    hi, lo = roll.max(), roll.min()
    span = (hi - lo).where(hi > lo)
    out = np.maximum((series - hi) / span, (lo - series) / span).clip(lower=0)
    return out.fillna(0.0).to_numpy()


def novelty_scores(values, params: NoveltyParams = NoveltyParams()) -> np.ndarray:
    """Causal anomaly scores in [0, 1] for one series (NaN values are carried forward)."""
    x = pd.Series(np.asarray(values, dtype=np.float64)).ffill().fillna(0.0)
    smoothed = [x if k == 1 else x.rolling(k, min_periods=1).mean() for k in params.scales]
    total = np.zeros(len(x))
    for lookback in params.lookbacks:
        raw = np.zeros(len(x))
        for s in smoothed:
            raw = np.maximum(raw, _beyond_range(s, lookback, params.min_history))
        squashed = _squash(raw)
        prev = pd.Series(squashed).shift(1)
        for sup in params.suppress:
            best_recent = prev.rolling(sup, min_periods=1).max().fillna(0.0).to_numpy()
            total += np.where(squashed > best_recent, squashed, 0.0)
    vote = total / (len(params.lookbacks) * len(params.suppress))
    if not params.record_relative:
        return vote
    record = np.maximum.accumulate(np.concatenate([[0.0], vote[:-1]]))
    return _record_relative(vote, record)


class _BlockExtreme:
    """Rolling max (or min) over about the last `length` rows of each series, kept per block.

    The window is the current partial block plus the last length // block full blocks (between
    length and length + block - 1 rows); length 0 means all history (one running value).
    """

    def __init__(self, n: int, length: int, block: int, fn):
        self.fn, self.fill = fn, (-np.inf if fn is np.maximum else np.inf)
        self.block = 1 if length == 0 else max(1, min(block, length))
        self.full = 0 if length == 0 else length // self.block
        self.ring = np.full((n, max(self.full, 1)), self.fill)
        self.partial = np.full(n, self.fill)
        self.count = 0  # rows in the partial block
        self.pos = 0
        self.ring_value = np.full(n, self.fill)  # cached reduction of the ring (changes once a block)
        self.all_history = length == 0

    def value(self) -> np.ndarray:
        if self.all_history or self.full == 0:
            return self.partial
        return self.fn(self.partial, self.ring_value)

    def push(self, x: np.ndarray) -> None:
        """Add one row; NaN (a series not started yet) leaves that series' extreme as it is."""
        self.partial = self.fn(self.partial, np.where(np.isnan(x), self.fill, x))
        self.count += 1
        if self.all_history or self.count < self.block:
            return
        if self.full:
            self.ring[:, self.pos] = self.partial
            self.pos = (self.pos + 1) % self.full
            self.ring_value = self.fn.reduce(self.ring, axis=1)
        self.partial = np.full_like(self.partial, self.fill)
        self.count = 0


class NoveltyBank:
    """`novelty_scores` for N series at once, one row (one interval) per `update` call.

    With `block=1` it reproduces `novelty_scores` exactly (tested); larger blocks keep rolling
    extremes per block of rows (memory N x lookback/block instead of N x lookback), which moves
    each window edge by less than one block. Missing values (NaN) carry the last value forward;
    a series starts at its first value (a unit that joins later, or whose collector was down at
    start-up): its history, `min_history` and `quiet_rows` count from there, and it scores 0
    before.
    """

    def __init__(self, n_series: int, params: NoveltyParams = NoveltyParams(), block: int = 50, quiet_rows: int = 750,
                 min_span=0.0):
        """`quiet_rows`: rows of a series that only learn (score 0) -- a series' first novelty
        scores 1 by construction, so the first rows after start-up would alarm everywhere; 750
        is NAB's probationary cap. 0 reproduces `novelty_scores`, which leaves that to the caller.
        `min_span` (scalar or per series): the smallest range a value is measured in -- a reading
        in whole volts that sat on 230 and 231 is not one range away at 232; 0 (NAB) measures in
        the range seen, and a series that never moved scores nothing."""
        if n_series < 1:
            raise ValueError(f"NoveltyBank: n_series must be >= 1, got {n_series}")
        if quiet_rows < 0:
            raise ValueError(f"NoveltyBank: quiet_rows must be >= 0, got {quiet_rows}")
        self.min_span = np.broadcast_to(np.asarray(min_span, dtype=np.float64), (n_series,)).copy()
        if np.any(~np.isfinite(self.min_span) | (self.min_span < 0)):
            raise ValueError(f"NoveltyBank: min_span must be finite and >= 0, got {min_span!r}")
        self.n, self.p, self.rows, self.quiet_rows = n_series, params, 0, quiet_rows
        self.record = np.zeros(n_series)  # highest vote so far per series
        self.last = np.full(n_series, np.nan)
        self.count = np.zeros(n_series, dtype=np.int64)  # rows since each series' first value
        self.lo, self.hi = np.full(n_series, np.nan), np.full(n_series, np.nan)  # all history, exact
        self.hist = {k: np.zeros((n_series, k)) for k in params.scales if k > 1}
        self.sums = {k: np.zeros(n_series) for k in self.hist}
        self.range = {(lb, k): (_BlockExtreme(n_series, lb, block, np.maximum), _BlockExtreme(n_series, lb, block, np.minimum))
                      for lb in params.lookbacks for k in params.scales}
        self.best = {(lb, s): _BlockExtreme(n_series, s, block, np.maximum) for lb in params.lookbacks for s in params.suppress}

    def seen(self) -> tuple[np.ndarray, np.ndarray]:
        """(lowest, highest) value of each series so far (NaN until it has one): call before `update`
        for the range a new row is compared with."""
        return self.lo.copy(), self.hi.copy()

    def update(self, x) -> np.ndarray:
        """Scores in [0, 1] for this row of every series (shape (N,))."""
        x = np.asarray(x, dtype=np.float64).reshape(self.n)
        x = np.where(np.isfinite(x), x, self.last)
        self.last = x
        started = ~np.isnan(x)
        scored = started & (self.count >= self.p.min_history)  # enough history before this row
        self.count = self.count + started
        x0 = np.where(started, x, 0.0)
        i = self.rows
        smoothed = {}
        for k in self.p.scales:
            if k == 1:
                smoothed[k] = np.where(started, x, np.nan)
                continue
            slot = i % k
            self.sums[k] += x0 - self.hist[k][:, slot]
            self.hist[k][:, slot] = x0
            smoothed[k] = np.where(started, self.sums[k] / np.clip(self.count, 1, k), np.nan)
        total = np.zeros(self.n)
        for lb in self.p.lookbacks:
            raw = np.zeros(self.n)
            for k in self.p.scales:
                hi_t, lo_t = self.range[(lb, k)]
                if scored.any():
                    hi, lo = hi_t.value(), lo_t.value()
                    span = np.maximum(hi - lo, self.min_span)
                    ok = scored & (span > 0) & np.isfinite(span)
                    safe = np.where(ok, span, 1.0)
                    with np.errstate(invalid="ignore"):
                        beyond = np.maximum((smoothed[k] - hi) / safe, (lo - smoothed[k]) / safe).clip(min=0)
                    raw = np.maximum(raw, np.where(ok, beyond, 0.0))
                hi_t.push(smoothed[k])
                lo_t.push(smoothed[k])
            squashed = _squash(raw)
            for s in self.p.suppress:
                best = self.best[(lb, s)]
                recent = np.maximum(best.value(), 0.0)  # fillna(0) of the batch version
                total += np.where(squashed > recent, squashed, 0.0)
                best.push(squashed)
        self.rows += 1
        self.lo, self.hi = np.fmin(self.lo, x), np.fmax(self.hi, x)
        vote = total / (len(self.p.lookbacks) * len(self.p.suppress))
        quiet = self.count <= self.quiet_rows
        if not self.p.record_relative:
            return np.where(quiet, 0.0, vote)
        out = _record_relative(vote, self.record)
        self.record = np.maximum(self.record, vote)
        return np.where(quiet, 0.0, out)


class NoveltyDetector(OutlierDetector):
    """The novelty core as a scikit-learn outlier detector over one multivariate stream (rows
    are time steps, columns series).

    `fit(X)` learns the range each column has shown; `score_samples(X)` scores rows against it
    (stateless: the largest distance from a column's mid-range in half-ranges, so beyond 1 is
    outside all it has seen; a range is at least `min_span`, scalar or per column); `score_stream(X)` is the fleet's arithmetic: each row scored
    causally by a `NoveltyBank` (the NAB vote, `quiet_rows` of probation per series, read in
    ranges: `range_score`), the largest score of the row's columns.
    """

    def __init__(self, contamination=0.01, quiet_rows=750, min_span=0.0):
        self.contamination = contamination
        self.quiet_rows = quiet_rows
        self.min_span = min_span

    def _fit(self, X):
        self.low_, self.high_ = X.min(axis=0), X.max(axis=0)

    def _z(self, X):
        half = np.maximum(np.maximum(self.high_ - self.low_, self.min_span) / 2.0, 1e-12)
        return np.max(np.abs(X - (self.high_ + self.low_) / 2.0) / half, axis=1)

    def score_stream(self, X) -> np.ndarray:
        """Causal per-row finding score in [0, 1] (max over columns), as the fleet computes it;
        the fitted range is not used."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64, ensure_all_finite="allow-nan")
        bank = NoveltyBank(X.shape[1], FLEET, quiet_rows=self.quiet_rows, min_span=self.min_span)
        return np.array([float(range_score(bank.update(row)).max()) for row in X])


def held_groups(inventory: Inventory, ids, attr: str = "") -> np.ndarray:
    """Group code per unit (-1: none): units whose held quantity moves together when something
    upstream of all of them moves (the cooling units of a zone, the PDUs of a row; else every
    unit of the kind on the site, three or more: one utility, one chilled-water plant)."""
    codes = drift_groups(inventory, ids, attr).copy()
    lone = codes < 0
    if lone.sum() >= 3:
        codes[lone] = int(codes.max()) + 1
    return codes


QUIET_ROWS = 750  # NAB's probation: rows of a series that only learn
# A unit's range is at least +-2 of the smallest spread its readings can have (`MIN_SCALE_BY_UNIT`:
# 2 V, 0.4 degC): a whole-volt reading one step outside the two values it sat on is not news
SPAN_PER_FLOOR = 4.0
FLEET = NoveltyParams(record_relative=False)  # the vote itself, read in ranges (`range_score`)


def range_score(vote) -> np.ndarray:
    """The fleet's finding score of a vote: 0.5 for a value one range (all the unit has read,
    at least `SPAN_PER_FLOOR` of its smallest spreads) beyond that range on every member of the
    vote, 0.8 at 2.3 ranges, approaching 1.

    NAB's record-relative score does not carry over: a unit's record is set in its first
    minutes, while its range is still narrow, so a whole-volt UPS output falling by 30 V scores
    0.64 against it and never reaches a page. The vote's own unit, the unit's range, does:
    `raw = expm1(v / (1 - v))` undoes the vote's squash, and `z_to_score` maps it as the other
    detectors map their z (alarm level 1 range).
    """
    v = np.clip(np.asarray(vote, dtype=np.float64), 0.0, 1.0 - 1e-9)
    return z_to_score(np.expm1(v / (1.0 - v)), 1.0)


class _NoveltyPart:
    """Each stream's `held` metrics, per unit, through one `NoveltyBank`, less what the unit's
    group moved together (a grid swing on every UPS input, a plant-wide supply change)."""

    def __init__(self, fleet: FleetScorer, state: None) -> None:
        self.fleet = fleet
        self.streams = {}
        for s in STREAMS:
            ids = fleet.tracker.ids[s.measurement]
            if not s.held or not len(ids):
                continue
            groups = held_groups(fleet.inventory, ids, s.peer_attr)
            shape = (len(ids), len(s.held))
            span = np.tile(SPAN_PER_FLOOR * unit_floors(s.held), shape[0])  # rows of units, columns of metrics
            self.streams[s.measurement] = (
                s, [s.metrics.index(m) for m in s.held], groups, group_batches(groups),
                NoveltyBank(shape[0] * shape[1], FLEET, quiet_rows=QUIET_ROWS, min_span=span), np.full(shape, np.nan))

    def score(self, f: IntervalFeatures) -> list[Finding]:
        fleet, out = self.fleet, []
        for m, (s, cols, groups, batches, bank, level) in self.streams.items():
            X = f.streams[m][:, cols]
            np.copyto(level, X, where=np.isnan(level) & ~np.isnan(X))  # each unit's first reading
            ref = np.nan_to_num(neighbour_median(X - level, groups, batches), nan=0.0)
            lo, hi = (v.reshape(X.shape) + ref for v in bank.seen())
            score = range_score(bank.update((X - ref).ravel())).reshape(X.shape)
            ids = fleet.tracker.ids[m]
            for i in np.flatnonzero(score.max(axis=1) >= fleet.params.min_score):
                j = int(np.argmax(score[i]))
                name, x = s.held[j], float(X[i, j])
                edge = float(np.clip(x, lo[i, j], hi[i, j]))
                side = "above" if x > edge else "below"
                why = (f"{name} {x:.4g}, {side} anything it has read ({lo[i, j]:.4g} to {hi[i, j]:.4g}"
                       f"{' with its group' if ref[i, j] else ''})")
                c = Contribution(name, x, edge, round(float(score[i, j]), 3))
                out.append(fleet._finding(f.time_ns, ids[i], "novelty", float(score[i, j]), why, (c,),
                                          {"kind": "novelty", "metric": name}))
        return out


NOVELTY = DetectorSpec(
    "novelty", NoveltyDetector,
    "quantities a controller or the supply holds level (voltages, a controlled supply temperature) going beyond "
    "anything the unit has read: the NAB vote, in ranges, less what the unit's group moved together",
    tuple(dict.fromkeys(m for s in STREAMS for m in s.held)), _NoveltyPart)
