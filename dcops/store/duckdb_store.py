"""The embedded telemetry store on DuckDB.

One table per measurement: `time` (ns), `sid` (a 64-bit hash of the row's tags), one VARCHAR
column per tag and one DOUBLE per field; NaN is stored as NULL. Columns are added as new tags
and fields appear.

Idempotency: a write first deletes the rows with the same (sid, time) inside the batch's time
span, then inserts, in one transaction, so a replayed batch replaces itself. A row is replaced
whole (DuckDB has no per-field merge on this path): collectors write each measurement's fields
for a series in one batch.

Retention and rollups, as InfluxDB keeps them (`dcops.store.rollups`): `roll_up(now)` keeps per
series mean, min, max and count per minute and per 15 minutes in `r1m_<measurement>` and
`r15m_<measurement>` (columns `mean__F`, `min__F`, `max__F`, `n__F` per field F), for complete
buckets only, recomputing the last two buckets of each tier every round so late or replayed rows
are counted; `rollup_state` keeps how far each tier got. `enforce_retention(now)` deletes raw rows
and events older than `retention_days` and tier rows older than the tier's `keep_days`. Both run
on a schedule (`rollups.Housekeeping`, in ingest and the demo). `query_range` with a window reads
the tier `pick_tier` chooses: the tier's rows up to its watermark and raw rows, bucketed the same
way, after it, so the newest minutes are never missing.
"""

from __future__ import annotations

import json
import re
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Sequence

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from dcops.batch import Batch, Event, concat_batches
from dcops.store.base import AGGREGATES, TIME_MAX_NS, TIME_MIN_NS, StoreError, StoreUnavailable, Where
from dcops.store.rollups import TIERS, Tier, pick_tier

__all__ = ["DuckDBStore", "series_ids"]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_AGG_SQL = {
    "mean": "avg({f})", "min": "min({f})", "max": "max({f})", "sum": "sum({f})",
    "count": "count({f})", "last": "arg_max({f}, time)", "first": "arg_min({f}, time)",
}
NS = 1_000_000_000


def _ident(name: str, what: str) -> str:
    if not isinstance(name, str) or not _IDENT.match(name):
        raise StoreError(f"invalid {what} name {name!r}")
    return f'"{name}"'


def _run(cur, sql: str) -> None:
    """Execute a statement and consume its result, so the cursor is free for the next one."""
    cur.execute(sql).fetchall()


def series_ids(tags: dict[str, np.ndarray], n: int) -> np.ndarray:
    """A stable 64-bit id per row from its non-empty tag values (tag order does not matter)."""
    h = np.full(n, 1469598103934665603, dtype=np.uint64)
    for name in sorted(tags):
        values = np.asarray(tags[name], dtype=object)
        col = pd.util.hash_array(values, categorize=True)
        key = pd.util.hash_array(np.asarray([name], dtype=object))[0]
        # an empty tag is the same as no tag, so batches merged with others keep their series ids
        h = np.where(values == "", h, (h * np.uint64(1099511628211)) ^ col ^ key)
    return h


@contextmanager
def _translated(what: str):
    """DuckDB's errors as ours: I/O trouble is unavailability, anything about the data a refusal."""
    try:
        yield
    except (duckdb.IOException, duckdb.ConnectionException) as exc:
        raise StoreUnavailable(f"DuckDB {what} failed: {exc}") from None
    except duckdb.Error as exc:
        raise StoreError(f"DuckDB refused the {what}: {exc}") from None
    except (OverflowError, TypeError) as exc:
        raise StoreError(f"DuckDB refused the {what}: {type(exc).__name__}: {exc}") from None


class DuckDBStore:
    def __init__(self, path: str | Path = ":memory:", retention_days: float = 7.0, *,
                 tiers: Sequence[Tier] = TIERS, clock=time.time_ns) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = str(path)
        self.retention_days = retention_days
        self.retention_ns = int(retention_days * 86400 * NS)
        self.tiers = tuple(tiers)
        self._clock = clock
        self._con = duckdb.connect(self.path)
        self._ddl = threading.Lock()
        self._columns: dict[str, dict[str, str]] = {}  # table -> column -> 'tag' | 'field'
        self._local = threading.local()
        self._con.execute(
            "CREATE TABLE IF NOT EXISTS events (eid UBIGINT, time BIGINT, kind VARCHAR, source VARCHAR,"
            " severity VARCHAR, message VARCHAR, hall VARCHAR, row VARCHAR, rack VARCHAR, device VARCHAR,"
            " target VARCHAR, attributes VARCHAR)"
        )
        self._con.execute("CREATE TABLE IF NOT EXISTS rollup_state (tier VARCHAR, measurement VARCHAR, done_ns BIGINT,"
                          " PRIMARY KEY (tier, measurement))")
        self._rolled: dict[str, set[str]] = {}  # rollup table -> its columns
        self._load_schema()

    # ----- plumbing -------------------------------------------------------------------------
    def _cur(self) -> duckdb.DuckDBPyConnection:
        cur = getattr(self._local, "cur", None)
        if cur is None:
            cur = self._local.cur = self._con.cursor()
        return cur

    def _load_schema(self) -> None:
        rows = self._con.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = 'main' AND table_name LIKE 'm\\_%' ESCAPE '\\'"
        ).fetchall()
        for table, col, dtype in rows:
            if col in ("time", "sid"):
                continue
            self._columns.setdefault(table, {})[col] = "tag" if dtype == "VARCHAR" else "field"
        for t in self.tiers:
            rows = self._con.execute(
                "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'main'"
                " AND starts_with(table_name, ?)", [f"r{t.name}_"]).fetchall()
            for table, col in rows:
                self._rolled.setdefault(table, set()).add(col)

    def _ensure(self, measurement: str, tags: Sequence[str], fields: Sequence[str]) -> str:
        table = "m_" + measurement
        _ident(table, "measurement")
        with self._ddl:
            cols = self._columns.get(table)
            if cols is None:
                self._con.execute(f'CREATE TABLE IF NOT EXISTS "{table}" (time BIGINT NOT NULL, sid UBIGINT NOT NULL)')
                cols = self._columns[table] = {}
            for t in tags:
                if t not in cols:
                    self._con.execute(f'ALTER TABLE "{table}" ADD COLUMN {_ident(t, "tag")} VARCHAR DEFAULT \'\'')
                    cols[t] = "tag"
            for f in fields:
                if f not in cols:
                    self._con.execute(f'ALTER TABLE "{table}" ADD COLUMN {_ident(f, "field")} DOUBLE')
                    cols[f] = "field"
        return table

    # ----- writes ---------------------------------------------------------------------------
    def write(self, batches: Sequence[Batch]) -> int:
        with _translated("write"):
            return self._write(batches)

    def _write(self, batches: Sequence[Batch]) -> int:
        written = 0
        by_measurement: dict[str, list[Batch]] = {}
        for b in batches:
            if len(b):
                by_measurement.setdefault(b.measurement, []).append(b)
        for group in by_measurement.values():
            # Many small batches (one per host or rack) become one bulk write per measurement.
            written += self._write_one(group[0] if len(group) == 1 else concat_batches(group))
        return written

    def _write_one(self, b: Batch) -> int:
        if len(b) and (int(b.time_ns.min()) < TIME_MIN_NS or int(b.time_ns.max()) > TIME_MAX_NS):
            raise StoreError(f"{b.measurement}: time outside the storable range")
        for name, col in b.fields.items():
            if np.isinf(col).any():
                raise StoreError(f"{b.measurement}.{name}: infinite value refused")
        table = self._ensure(b.measurement, list(b.tags), list(b.fields))
        sid = series_ids(dict(b.tags), len(b))
        dup = pd.DataFrame({"s": sid, "t": b.time_ns}).duplicated(keep="last").to_numpy()
        if dup.any():  # the same row twice in one write: the later one wins, as with two writes
            b, sid = b.select(~dup), sid[~dup]
        arrays = {"time": pa.array(b.time_ns, pa.int64()), "sid": pa.array(sid, pa.uint64())}
        for k, v in b.tags.items():
            arrays[k] = pa.array(v, pa.string())
        for k, v in b.fields.items():
            arrays[k] = pa.array(v, pa.float64(), from_pandas=True)
        staged = pa.table(arrays)
        cur = self._cur()
        cols = ", ".join(f'"{c}"' for c in arrays)
        tmin, tmax = int(b.time_ns.min()), int(b.time_ns.max())
        cur.register("_staged", staged)
        try:
            _run(cur, "BEGIN")
            _run(cur, f'DELETE FROM "{table}" WHERE time BETWEEN {tmin} AND {tmax}'
                      f' AND (sid, time) IN (SELECT sid, time FROM _staged)')
            _run(cur, f'INSERT INTO "{table}" ({cols}) SELECT {cols} FROM _staged')
            _run(cur, "COMMIT")
        except Exception:
            _run(cur, "ROLLBACK")
            raise
        finally:
            cur.unregister("_staged")
        return b.n_values

    def write_events(self, events: Sequence[Event]) -> int:
        with _translated("event write"):
            return self._write_events(events)

    def _write_events(self, events: Sequence[Event]) -> int:
        if not events:
            return 0
        for e in events:
            if isinstance(e.time_ns, bool) or not TIME_MIN_NS <= e.time_ns <= TIME_MAX_NS:
                raise StoreError(f"event {e.kind!r}: time {e.time_ns} ns outside the storable range")
        rows = []
        for e in events:
            target = json.dumps(dict(e.target), sort_keys=True)
            attrs = json.dumps(dict(e.attributes), sort_keys=True, default=str)
            rows.append((e.time_ns, e.kind, e.source, e.severity, e.message, e.target.get("hall", ""),
                         e.target.get("row", ""), e.target.get("rack", ""), e.target.get("device", ""), target, attrs))
        frame = pd.DataFrame(rows, columns=["time", "kind", "source", "severity", "message", "hall", "row", "rack",
                                            "device", "target", "attributes"])
        frame.insert(0, "eid", pd.util.hash_pandas_object(frame[["time", "kind", "source", "target", "attributes"]],
                                                          index=False).to_numpy(np.uint64))
        frame = frame.drop_duplicates("eid")
        cur = self._cur()
        cur.register("_ev", frame)
        try:
            _run(cur, "BEGIN")
            _run(cur, "DELETE FROM events WHERE eid IN (SELECT eid FROM _ev)")
            _run(cur, "INSERT INTO events SELECT * FROM _ev")
            _run(cur, "COMMIT")
        except Exception:
            _run(cur, "ROLLBACK")
            raise
        finally:
            cur.unregister("_ev")
        return len(frame)

    # ----- queries --------------------------------------------------------------------------
    def _table(self, measurement: str) -> tuple[str, dict[str, str]] | None:
        table = "m_" + measurement
        _ident(table, "measurement")
        cols = self._columns.get(table)
        return (table, dict(cols)) if cols is not None else None

    @staticmethod
    def _where(where: Where | None, cols: dict[str, str]) -> tuple[str, list]:
        if not where:
            return "", []
        parts, params = [], []
        for k, v in where.items():
            if cols.get(k) != "tag":
                raise StoreError(f"unknown tag {k!r} in filter")
            if isinstance(v, str):
                parts.append(f'"{k}" = ?')
                params.append(v)
            else:
                vals = list(v)
                if not vals:
                    return " AND FALSE", []
                parts.append(f'"{k}" IN ({", ".join("?" for _ in vals)})')
                params.extend(vals)
        return " AND " + " AND ".join(parts), params

    def _fields(self, measurement: str, fields, cols) -> list[str]:
        if fields is None:
            return [c for c, k in cols.items() if k == "field"]
        for f in fields:
            if cols.get(f) != "field":
                known = sorted(c for c, k in cols.items() if k == "field")
                raise StoreError(f"measurement {measurement!r} has no field {f!r} (has {known[:20]})")
        return list(fields)

    def _to_batch(self, measurement: str, frame: pd.DataFrame, tags: list[str], fields: list[str]) -> Batch:
        return Batch(
            measurement,
            frame["time"].to_numpy(np.int64),
            {t: frame[t].fillna("").astype(object).to_numpy() for t in tags},
            {f: frame[f].to_numpy(np.float64, na_value=np.nan) for f in fields},
        )

    def latest(self, measurement, fields=None, where=None, max_age_s: float = 900.0) -> Batch:
        found = self._table(measurement)
        if found is None:
            return Batch.empty(measurement, fields=fields or ())
        table, cols = found
        tags = [c for c, k in cols.items() if k == "tag"]
        flds = self._fields(measurement, fields, cols)
        wsql, params = self._where(where, cols)
        sel = ", ".join(f'"{c}"' for c in ["time", *tags, *flds])
        sql = (
            f'SELECT {sel} FROM "{table}" WHERE time >= (SELECT max(time) FROM "{table}") - {int(max_age_s * NS)}'
            f"{wsql} QUALIFY row_number() OVER (PARTITION BY sid ORDER BY time DESC) = 1"
        )
        frame = self._cur().execute(sql, params).fetch_df()
        return self._to_batch(measurement, frame, tags, flds)

    def query_range(self, measurement, fields, start_ns, end_ns, every_s=None, agg="mean", where=None,
                    group_by=None) -> Batch:
        found = self._table(measurement)
        if found is None:
            return Batch.empty(measurement, fields=fields or ())
        table, cols = found
        flds = self._fields(measurement, fields, cols)
        tags = [c for c, k in cols.items() if k == "tag"]
        wsql, params = self._where(where, cols)
        rng = f"time >= {int(start_ns)} AND time < {int(end_ns)}"
        if every_s is None:
            sel = ", ".join(f'"{c}"' for c in ["time", *tags, *flds])
            sql = f'SELECT {sel} FROM "{table}" WHERE {rng}{wsql} ORDER BY time'
            return self._to_batch(measurement, self._cur().execute(sql, params).fetch_df(), tags, flds)
        if agg not in AGGREGATES:
            raise StoreError(f"unknown aggregate {agg!r} (one of {AGGREGATES})")
        every = max(1, int(every_s * NS))
        gtags = tags if group_by is None else list(group_by)
        for g in gtags:
            if cols.get(g) != "tag":
                raise StoreError(f"cannot group by {g!r}: not a tag of {measurement!r}")
        tier = pick_tier(self.tiers, start_ns, end_ns, every_s, agg, self._clock(), self.retention_days)
        if tier is not None:
            rolled = self._query_tier(tier, measurement, table, cols, flds, tags, gtags, wsql, params,
                                      int(start_ns), int(end_ns), every, agg)
            if rolled is not None:
                return rolled
        aggs = ", ".join(f'{_AGG_SQL[agg].format(f=_ident(f, "field"))} AS "{f}"' for f in flds)
        gsel = "".join(f', "{g}"' for g in gtags)
        sql = (
            f'SELECT (time // {every}) * {every} AS time{gsel}{", " + aggs if aggs else ""} FROM "{table}"'
            f" WHERE {rng}{wsql} GROUP BY ALL ORDER BY time"
        )
        return self._to_batch(measurement, self._cur().execute(sql, params).fetch_df(), gtags, flds)

    def events(self, start_ns, end_ns, kinds=None, where=None, limit: int = 10_000) -> list[Event]:
        sql = "SELECT time, kind, source, severity, message, target, attributes FROM events WHERE time >= ? AND time < ?"
        params: list = [int(start_ns), int(end_ns)]
        if kinds:
            sql += f" AND kind IN ({', '.join('?' for _ in kinds)})"
            params.extend(kinds)
        for k, v in (where or {}).items():
            if k not in ("hall", "row", "rack", "device", "kind", "source", "severity"):
                raise StoreError(f"cannot filter events by {k!r}")
            vals = [v] if isinstance(v, str) else list(v)
            sql += f' AND "{k}" IN ({", ".join("?" for _ in vals)})'
            params.extend(vals)
        sql += f" ORDER BY time LIMIT {int(limit)}"
        out = []
        for t, kind, source, sev, msg, target, attrs in self._cur().execute(sql, params).fetchall():
            out.append(Event(t, kind, source, json.loads(target), sev, msg, json.loads(attrs)))
        return out

    def measurements(self) -> list[str]:
        return sorted(t[2:] for t in self._columns)

    def count(self, measurement: str) -> int:
        found = self._table(measurement)
        if found is None:
            return 0
        return int(self._cur().execute(f'SELECT count(*) FROM "{found[0]}"').fetchall()[0][0])

    # ----- rollups and retention -------------------------------------------------------------
    def _tier_table(self, tier: Tier, table: str) -> str:
        return f"r{tier.name}_{table[2:]}"

    def _watermark(self, tier: Tier, measurement: str) -> int | None:
        row = self._cur().execute("SELECT done_ns FROM rollup_state WHERE tier = ? AND measurement = ?",
                                  [tier.name, measurement]).fetchall()
        return int(row[0][0]) if row else None

    def _ensure_tier_table(self, rtable: str, tags: list[str], fields: list[str]) -> None:
        with self._ddl:
            have = self._rolled.get(rtable)
            if have is None:
                self._con.execute(f'CREATE TABLE IF NOT EXISTS "{rtable}" (time BIGINT NOT NULL, sid UBIGINT NOT NULL)')
                have = self._rolled[rtable] = {"time", "sid"}
            for t in tags:
                if t not in have:
                    self._con.execute(f'ALTER TABLE "{rtable}" ADD COLUMN "{t}" VARCHAR DEFAULT \'\'')
                    have.add(t)
            for f in fields:
                for kind, sqltype in (("mean", "DOUBLE"), ("min", "DOUBLE"), ("max", "DOUBLE"), ("n", "BIGINT")):
                    col = f"{kind}__{f}"
                    if col not in have:
                        self._con.execute(f'ALTER TABLE "{rtable}" ADD COLUMN "{col}" {sqltype}')
                        have.add(col)

    @staticmethod
    def _bucket_select(every: int, tags: list[str], fields: list[str]) -> str:
        """Raw rows -> one row per (bucket, series): the tier's columns."""
        parts = [f"(time // {every}) * {every} AS time", "sid"]
        parts += [f'any_value("{t}") AS "{t}"' for t in tags]
        for f in fields:
            parts += [f'avg("{f}") AS "mean__{f}"', f'min("{f}") AS "min__{f}"', f'max("{f}") AS "max__{f}"',
                      f'count("{f}") AS "n__{f}"']
        return ", ".join(parts)

    def roll_up(self, now_ns: int) -> int:
        """Bring every tier of every measurement up to the last complete bucket before `now_ns`;
        returns the rows written."""
        with _translated("rollup"):
            written = 0
            for table, cols in list(self._columns.items()):
                tags = [c for c, k in cols.items() if k == "tag"]
                fields = [c for c, k in cols.items() if k == "field"]
                for tier in self.tiers:
                    written += self._roll_tier(tier, table, tags, fields, int(now_ns))
            return written

    def _roll_tier(self, tier: Tier, table: str, tags: list[str], fields: list[str], now_ns: int) -> int:
        every = tier.every_s * NS
        end = (now_ns // every) * every
        measurement = table[2:]
        done = self._watermark(tier, measurement)
        cur = self._cur()
        if done is None:
            first = cur.execute(f'SELECT min(time) FROM "{table}"').fetchall()[0][0]
            if first is None:
                return 0
            start = (int(first) // every) * every
        else:
            # late and replayed rows of the last two buckets are counted; a bucket whose raw rows
            # retention has begun to delete is never recomputed (its tier row is all that is left)
            first = cur.execute(f'SELECT min(time) FROM "{table}" WHERE time >= {max(0, done - 2 * every)}').fetchall()[0][0]
            if first is None:
                return 0
            start = max(done - 2 * every, -(-int(first) // every) * every)
        if start >= end:
            return 0
        rtable = self._tier_table(tier, table)
        self._ensure_tier_table(rtable, tags, fields)
        cols = ", ".join(f'"{c}"' for c in ["time", "sid", *tags,
                                             *(f"{k}__{f}" for f in fields for k in ("mean", "min", "max", "n"))])
        try:
            _run(cur, "BEGIN")
            _run(cur, f'DELETE FROM "{rtable}" WHERE time >= {start} AND time < {end}')
            n = cur.execute(f'INSERT INTO "{rtable}" ({cols}) SELECT {self._bucket_select(every, tags, fields)}'
                            f' FROM "{table}" WHERE time >= {start} AND time < {end} GROUP BY 1, sid').fetchall()[0][0]
            _run(cur, f"INSERT OR REPLACE INTO rollup_state VALUES ('{tier.name}', '{measurement}', {end})")
            _run(cur, "COMMIT")
        except Exception:
            _run(cur, "ROLLBACK")
            raise
        return int(n)

    def _query_tier(self, tier: Tier, measurement: str, table: str, cols: dict[str, str], flds: list[str],
                    tags: list[str], gtags: list[str], wsql: str, params: list, start_ns: int, end_ns: int,
                    every: int, agg: str) -> Batch | None:
        """A windowed query over the tier (raw rows after its watermark, bucketed alike); None when the
        tier does not hold these fields yet."""
        rtable = self._tier_table(tier, table)
        have = self._rolled.get(rtable)
        wm = self._watermark(tier, measurement)
        if wm is None or have is None or any(f"mean__{f}" not in have for f in flds) or any(t not in have for t in tags):
            return None
        tcols = ", ".join(f'"{c}"' for c in ["time", "sid", *tags,
                                              *(f"{k}__{f}" for f in flds for k in ("mean", "min", "max", "n"))])
        t_every = tier.every_s * NS
        split = min(max(wm, start_ns), end_ns)
        src = (f'SELECT {tcols} FROM "{rtable}" WHERE time >= {start_ns} AND time < {split}{wsql}'
               f" UNION ALL BY NAME"
               f' SELECT {self._bucket_select(t_every, tags, flds)} FROM "{table}"'
               f" WHERE time >= {split} AND time < {end_ns}{wsql} GROUP BY 1, sid")
        outer = {"mean": 'sum("mean__{f}" * "n__{f}") / nullif(sum("n__{f}"), 0)',
                 "min": 'min("min__{f}")', "max": 'max("max__{f}")'}[agg]
        aggs = ", ".join(f'{outer.format(f=f)} AS "{f}"' for f in flds)
        gsel = "".join(f', "{g}"' for g in gtags)
        sql = (f'SELECT (time // {every}) * {every} AS time{gsel}{", " + aggs if aggs else ""} FROM ({src})'
               f" GROUP BY ALL ORDER BY time")
        return self._to_batch(measurement, self._cur().execute(sql, params + params).fetch_df(), gtags, flds)

    def enforce_retention(self, now_ns: int) -> int:
        """Delete raw rows and events older than the retention, and tier rows older than the tier's
        `keep_days`; returns the rows deleted."""
        with _translated("retention"):
            cutoff = int(now_ns) - self.retention_ns
            deleted = 0
            cur = self._cur()
            for table in list(self._columns):
                deleted += cur.execute(f'DELETE FROM "{table}" WHERE time < {cutoff}').fetchall()[0][0]
            deleted += cur.execute(f"DELETE FROM events WHERE time < {cutoff}").fetchall()[0][0]
            for tier in self.tiers:
                tier_cutoff = int(now_ns) - int(tier.keep_days * 86400 * NS)
                for rtable in [t for t in list(self._rolled) if t.startswith(f"r{tier.name}_")]:
                    deleted += cur.execute(f'DELETE FROM "{rtable}" WHERE time < {tier_cutoff}').fetchall()[0][0]
            return int(deleted)

    def close(self, wait_s: float = 5.0) -> None:
        """Close; a query still running in another thread (a retraining job) is given `wait_s`."""
        deadline = time.monotonic() + wait_s
        while True:
            try:
                self._con.close()
                return
            except duckdb.Error as exc:
                if "busy" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
