"""The embedded telemetry store on DuckDB.

One table per measurement: `time` (ns), `sid` (a 64-bit hash of the row's tags), one VARCHAR
column per tag and one DOUBLE per field; NaN is stored as NULL. Columns are added as new tags
and fields appear.

Idempotency: a write first deletes the rows with the same (sid, time) inside the batch's time
span, then inserts, in one transaction, so a replayed batch replaces itself. A row is replaced
whole (DuckDB has no per-field merge on this path): collectors write each measurement's fields
for a series in one batch.
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
    def __init__(self, path: str | Path = ":memory:", retention_days: float = 7.0) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = str(path)
        self.retention_ns = int(retention_days * 86400 * NS)
        self._con = duckdb.connect(self.path)
        self._ddl = threading.Lock()
        self._columns: dict[str, dict[str, str]] = {}  # table -> column -> 'tag' | 'field'
        self._local = threading.local()
        self._con.execute(
            "CREATE TABLE IF NOT EXISTS events (eid UBIGINT, time BIGINT, kind VARCHAR, source VARCHAR,"
            " severity VARCHAR, message VARCHAR, hall VARCHAR, row VARCHAR, rack VARCHAR, device VARCHAR,"
            " target VARCHAR, attributes VARCHAR)"
        )
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

    def enforce_retention(self, now_ns: int) -> int:
        cutoff = int(now_ns) - self.retention_ns
        deleted = 0
        for table in list(self._columns):
            deleted += self._cur().execute(f'DELETE FROM "{table}" WHERE time < {cutoff}').fetchall()[0][0]
        deleted += self._cur().execute(f"DELETE FROM events WHERE time < {cutoff}").fetchall()[0][0]
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
