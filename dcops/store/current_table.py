"""One measurement's slice of the current-state view (`dcops.store.current`): a slot per
series, and per field a value column and a time column over the slots, updated column-wise.

Slots are appended, never moved, so positions computed once (a reader's key -> slot map, a
tag's factorized codes) stay valid until a new series appears; those caches are dropped then.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from dcops.batch import Batch
from dcops.store.base import StoreError, Where

__all__ = ["NEVER", "SlotTable", "series_ids"]

NEVER = np.iinfo(np.int64).min  # the time of a value never written


def series_ids(tags: Mapping[str, np.ndarray], n: int) -> np.ndarray:
    """A stable 64-bit id per row from its non-empty tag values (tag order does not matter);
    the same rule the DuckDB store uses, so an empty tag is the same as no tag."""
    h = np.full(n, 1469598103934665603, dtype=np.uint64)
    for name in sorted(tags):
        values = np.asarray(tags[name], dtype=object)
        col = pd.util.hash_array(values, categorize=True)
        key = pd.util.hash_array(np.asarray([name], dtype=object))[0]
        h = np.where(values == "", h, (h * np.uint64(1099511628211)) ^ col ^ key)
    return h


def _grow(arr: np.ndarray, cap: int, fill) -> np.ndarray:
    out = np.full(cap, fill, dtype=arr.dtype)
    out[: len(arr)] = arr
    return out


class SlotTable:
    """One measurement: a slot per series; tags, values and times as columns of slots."""

    def __init__(self, measurement: str) -> None:
        self.measurement = measurement
        self.n = 0
        self.cap = 0
        self.index = pd.Index(np.empty(0, dtype=np.uint64))
        self.sids = np.empty(0, dtype=np.uint64)
        self.tags: dict[str, np.ndarray] = {}
        self.values: dict[str, np.ndarray] = {}
        self.times: dict[str, np.ndarray] = {}
        self.prev: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # counters (*_total): the value before
        self.newest_ns = NEVER
        self.codes: dict[str, tuple[np.ndarray, np.ndarray, dict]] = {}  # tag -> factorized slots (until new slots)
        self.aligned: dict[tuple, tuple[int, np.ndarray, np.ndarray]] = {}  # (tags, id(keys)) -> (n, keys, slots)

    def _reserve(self, n: int) -> None:
        if n <= self.cap:
            return
        cap = max(n, 2 * self.cap, 64)
        self.sids = _grow(self.sids, cap, 0)
        self.tags = {k: _grow(v, cap, "") for k, v in self.tags.items()}
        self.values = {k: _grow(v, cap, np.nan) for k, v in self.values.items()}
        self.times = {k: _grow(v, cap, NEVER) for k, v in self.times.items()}
        self.prev = {k: (_grow(v, cap, np.nan), _grow(t, cap, NEVER)) for k, (v, t) in self.prev.items()}
        self.cap = cap

    def _add_field(self, f: str) -> None:
        self.values[f] = np.full(self.cap, np.nan)
        self.times[f] = np.full(self.cap, NEVER, dtype=np.int64)
        if f.endswith("_total"):
            self.prev[f] = (np.full(self.cap, np.nan), np.full(self.cap, NEVER, dtype=np.int64))

    def slots(self, b: Batch) -> np.ndarray:
        """The slot of every row of `b`, adding slots for series not seen before."""
        sid = series_ids(b.tags, len(b))
        pos = self.index.get_indexer(sid) if self.n else np.full(len(b), -1, dtype=np.intp)
        new = pos < 0
        if new.any():
            uniq, first = np.unique(sid[new], return_index=True)
            rows = np.flatnonzero(new)[np.sort(first)]
            k = len(rows)
            self._reserve(self.n + k)
            for t in b.tags:
                if t not in self.tags:
                    self.tags[t] = np.full(self.cap, "", dtype=object)
            sl = slice(self.n, self.n + k)
            self.sids[sl] = sid[rows]
            for t, col in b.tags.items():
                self.tags[t][sl] = col[rows]
            self.n += k
            self.index = pd.Index(self.sids[: self.n])
            self.codes.clear()
            self.aligned.clear()
            pos = self.index.get_indexer(sid)
        return pos

    def update(self, b: Batch) -> None:
        t = b.time_ns
        if len(t) > 1 and (np.diff(t) < 0).any():
            b = b.select(np.argsort(t, kind="stable"))
            t = b.time_ns
        pos = self.slots(b)
        if len(np.unique(pos)) == len(pos):
            self._apply(t, pos, b.fields)
        else:  # several rows of a series (a range read): apply them oldest first, a generation at a time
            order = np.argsort(pos, kind="stable")
            sp = pos[order]
            first = np.r_[True, sp[1:] != sp[:-1]]
            start = np.maximum.accumulate(np.where(first, np.arange(len(sp)), 0))
            rank = np.empty(len(sp), dtype=np.intp)
            rank[order] = np.arange(len(sp)) - start
            for r in range(int(rank.max()) + 1):
                m = rank == r
                self._apply(t[m], pos[m], {f: col[m] for f, col in b.fields.items()})
        if len(t):
            self.newest_ns = max(self.newest_ns, int(t.max()))

    def _apply(self, t: np.ndarray, pos: np.ndarray, fields: Mapping[str, np.ndarray]) -> None:
        for f, col in fields.items():
            if f not in self.values:
                self._add_field(f)
            times = self.times[f]
            ok = t >= times[pos]
            p, tv = pos[ok], t[ok]
            if f in self.prev:
                pv, pt = self.prev[f]
                newer = tv > times[p]
                pv[p[newer]] = self.values[f][p[newer]]
                pt[p[newer]] = times[p[newer]]
            self.values[f][p] = col[ok]
            times[p] = tv

    def group_codes(self, tag: str) -> tuple[np.ndarray, np.ndarray, dict]:
        """Per slot, the code of its value of `tag`; the values; value -> code."""
        hit = self.codes.get(tag)
        if hit is None:
            col = self.tags.get(tag)
            if col is None:
                raise StoreError(f"unknown tag {tag!r} in filter")
            codes, uniques = pd.factorize(col[: self.n])
            uniques = np.asarray(uniques, dtype=object)
            hit = self.codes[tag] = (codes, uniques, {v: i for i, v in enumerate(uniques.tolist())})
        return hit

    def where_slots(self, where: Where | None) -> np.ndarray:
        if not where:
            return np.arange(self.n)
        mask = np.ones(self.n, dtype=bool)
        for tag, want in where.items():
            codes, _, lookup = self.group_codes(tag)
            vals = [want] if isinstance(want, str) else list(want)
            ks = [lookup[v] for v in vals if v in lookup]
            mask &= codes == ks[0] if len(ks) == 1 else np.isin(codes, ks)
        return np.flatnonzero(mask)

    def slots_of(self, on: tuple[str, ...], keys: np.ndarray) -> np.ndarray:
        """The slot of each key (the values of tags `on` joined with ':'), -1 where none; cached
        until new series appear, so a reader passing the same key array pays the join once."""
        hit = self.aligned.get((on, id(keys)))
        if hit is not None and hit[0] == self.n and hit[1] is keys:
            return hit[2]
        cols = [self.tags.get(t) for t in on]
        if any(c is None for c in cols) or not self.n:
            slots = np.full(len(keys), -1, dtype=np.intp)
        else:
            joined = cols[0][: self.n]
            for c in cols[1:]:
                joined = joined + ":" + c[: self.n]
            where = dict(zip(joined.tolist(), range(self.n)))  # a key seen twice: the later series
            slots = np.fromiter((where.get(k, -1) for k in np.asarray(keys, dtype=object).tolist()),
                                dtype=np.intp, count=len(keys))
        self.aligned[(on, id(keys))] = (self.n, keys, slots)
        return slots

    def fields_of(self, fields: Sequence[str] | None) -> list[str]:
        if fields is None:
            return list(self.values)
        for f in fields:
            if f not in self.values:
                raise StoreError(f"measurement {self.measurement!r} has no field {f!r} (has {sorted(self.values)[:20]})")
        return list(fields)
