"""Rollup tiers and the store's housekeeping schedule, the same for DuckDB and InfluxDB.

Both stores keep raw points for `settings.store.retention_days` and per-series mean, min and max
per minute (90 days) and per 15 minutes (2 years). A range query with a window step reads the
coarsest tier whose step fits the window when the range is long (a day or more for 1 min, 30 days
or more for 15 min) or reaches back past the raw retention (`pick_tier`), so a month of a rack's
power reads ~3,000 rollup rows instead of ~260,000 raw ones.

InfluxDB computes its tiers itself (continuous queries) and drops expired shards; DuckDB has
neither, so `Housekeeping` calls the store's `roll_up(now)` and `enforce_retention(now)` every
`every_s` in a thread of the process that owns the store (ingest, the demo).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Sequence

__all__ = ["Tier", "TIERS", "ROLLED_AGGREGATES", "pick_tier", "Housekeeping"]

log = logging.getLogger(__name__)
NS = 1_000_000_000
DAY_S = 86400


@dataclass(frozen=True)
class Tier:
    name: str          # "1m", "15m"
    every_s: int       # bucket width
    keep_days: float   # how long the tier is kept
    min_span_s: float  # ranges at least this long read the tier


TIERS = (
    Tier("1m", 60, 90, DAY_S),
    Tier("15m", 900, 728, 30 * DAY_S),
)
ROLLED_AGGREGATES = ("mean", "min", "max")


def pick_tier(tiers: Sequence, start_ns: int, end_ns: int, every_s: float | None, agg: str, now_ns: int,
              retention_days: float):
    """The tier a windowed range query reads (coarsest first), or None for raw points: the window
    step must be at least the tier's step, the aggregate one the tiers keep, and the range long
    (`min_span_s`) or older than the raw retention. `tiers` are `Tier`s or anything with `every_s`
    and `min_span_s` (InfluxDB's `Rollup`)."""
    if every_s is None or agg not in ROLLED_AGGREGATES:
        return None
    old = start_ns < now_ns - int(retention_days * DAY_S * NS)
    for t in sorted(tiers, key=lambda t: -t.every_s):
        if every_s >= t.every_s and (old or (end_ns - start_ns) >= t.min_span_s * NS):
            return t
    return None


class Housekeeping:
    """Calls `store.roll_up(now_ns)` (when the store has one) then `store.enforce_retention(now_ns)`
    every `every_s` seconds, and once more on `stop()`. A failure is logged once per kind and
    retried on the next round; it never stops the thread."""

    def __init__(self, store, every_s: float = 60.0, clock: Callable[[], int] = time.time_ns) -> None:
        self.store = store
        self.every_s = every_s
        self.clock = clock
        self.rounds = 0
        self.deleted = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing: str | None = None

    def run_once(self) -> int:
        now = self.clock()
        roll_up = getattr(self.store, "roll_up", None)
        if roll_up is not None:
            roll_up(now)
        deleted = int(self.store.enforce_retention(now) or 0)
        self.deleted += deleted
        self.rounds += 1
        return deleted

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            self._round()

    def _round(self) -> None:
        try:
            self.run_once()
            if self._failing:
                log.info("store housekeeping works again")
            self._failing = None
        except Exception as exc:  # the store is down or busy: next round
            kind = type(exc).__name__
            if self._failing != kind:
                log.warning("store housekeeping (rollups, retention) failed: %s: %s", kind, exc)
            self._failing = kind

    def start(self) -> "Housekeeping":
        self._thread = threading.Thread(target=self._loop, name="dcops-store-housekeeping", daemon=True)
        self._thread.start()
        return self

    def stop(self, final: bool = True) -> None:
        """Stop the thread (and run one last round, so the newest complete minutes are rolled up)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        if final:
            self._round()
