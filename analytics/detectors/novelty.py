"""Multi-scale causal novelty: how far a value (or its recent mean) lies outside everything seen.

Used for single series without a fleet around them (NAB, a site's PUE, one UPS's load): at each
row, the value and its moving averages are compared with the range of their own past over a
lookback; a point beyond that range scores by how far beyond it lies, relative to the range.
After a score, repeats are suppressed until something exceeds the highest raw score of the
last `suppress` rows, so a level shift raises one alarm, not hundreds.

Everything is computed with trailing windows only, so the score of row i depends on rows <= i:
a truncated series gets the same scores on the rows it keeps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["NoveltyParams", "novelty_scores"]


@dataclass(frozen=True)
class NoveltyParams:
    """Chosen on the NAB subset in ../shared/data/nab (neighbouring values score 72-78)."""

    scales: tuple[int, ...] = (1, 20)  # moving-average lengths compared with their own past
    lookback: int = 5000  # rows of past range that count as "seen"
    min_history: int = 30  # rows before anything scores
    suppress: int = 400  # rows a score stays the one to beat


def _beyond_range(series: pd.Series, p: NoveltyParams) -> np.ndarray:
    prev = series.shift(1)
    hi = prev.rolling(p.lookback, min_periods=p.min_history).max()
    lo = prev.rolling(p.lookback, min_periods=p.min_history).min()
    span = (hi - lo).where(hi > lo)
    out = np.maximum((series - hi) / span, (lo - series) / span).clip(lower=0)
    return out.fillna(0.0).to_numpy()


def novelty_scores(values, params: NoveltyParams = NoveltyParams()) -> np.ndarray:
    """Causal anomaly scores in [0, 1) for one series (NaN values are carried forward)."""
    x = pd.Series(np.asarray(values, dtype=np.float64)).ffill().fillna(0.0)
    raw = np.zeros(len(x))
    for k in params.scales:
        smoothed = x if k == 1 else x.rolling(k, min_periods=1).mean()
        raw = np.maximum(raw, _beyond_range(smoothed, params))
    squashed = np.log1p(raw)
    squashed = squashed / (1.0 + squashed)
    best_recent = pd.Series(squashed).shift(1).rolling(params.suppress, min_periods=1).max().fillna(0.0).to_numpy()
    return np.where(squashed > best_recent, squashed, 0.0)
