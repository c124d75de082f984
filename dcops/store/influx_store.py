"""The production telemetry store on InfluxDB (influxdb-client for writes, InfluxQL for queries).

This is the only module that imports influxdb-client; it turns its errors into ours.

Writes: line protocol is built column by column (`dcops.store.lineproto`) into request bodies
of `chunk_lines` lines, handed to influxdb-client's write API in batching mode (its own retries
with exponential backoff, `concurrency` requests in flight). `write()` returns only after
InfluxDB acknowledged every body (the batching callbacks resolve one future per body) and
raises `StoreUnavailable` when it could not be reached or did not answer within the retries,
or `StoreError` when it refused the data (HTTP 4xx). That is what lets ingest commit offsets
only after the store has the data. Writes are idempotent: a point with the same measurement,
tag set and time overwrites the earlier one.

Queries: InfluxQL over `/query` (InfluxDB 1.x; 2.x through its v1 compatibility API and DBRP
mappings; 3.x), epoch=ns, parsed into `Batch`es.

Retention and rollups: raw points live in the `raw` retention policy (`retention_days`);
continuous queries keep mean/min/max per minute for 90 days and per 15 minutes for 2 years
(`ROLLUPS`, data; the DuckDB store keeps the same tiers, `dcops.store.rollups.TIERS`).
`query_range` reads a rollup when the requested window step is at least the rollup's step and
the window is long (`Rollup.min_span_s`) or older than the raw retention (`pick_tier`).
On 1.x `ensure_schema()` creates the database, policies and continuous queries; on 2.x/3.x
those are provisioned outside (buckets + DBRP mappings / downsampling) and `manage_schema=False`.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections import defaultdict, deque
from concurrent.futures import Future, wait
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import httpx
import numpy as np

from dcops.batch import Batch, Event
from dcops.secrets import redact as _redact_known
from dcops.store.base import AGGREGATES, TIME_MAX_NS, TIME_MIN_NS, StoreError, StoreUnavailable, Where, valid_name
from dcops.store.lineproto import EVENT_MEASUREMENT, batches_to_chunks, event_lines
from dcops.store.rollups import pick_tier

__all__ = ["InfluxStore", "Rollup", "ROLLUPS", "influxql_where"]

log = logging.getLogger(__name__)
NS = 1_000_000_000
DAY_S = 86400


@dataclass(frozen=True)
class Rollup:
    rp: str
    every_s: int
    duration: str
    min_span_s: float  # windows at least this long read the rollup


ROLLUPS = (
    Rollup("rollup_15m", 900, "104w", 30 * DAY_S),
    Rollup("rollup_1m", 60, "90d", DAY_S),
)


_USERINFO = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://)[^/@\s]+@")
_SECRET_PARAM = re.compile(r"(?i)([?&](?:token|password|passwd|pass|p|u|secret|key|api_key|auth)=)[^&\s'\"]+")
_AUTH_HEADER = re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?(?:token|bearer|basic)\s+)[^\s'\",}]+")


def redact(text: str) -> str:
    """Text with known secrets (dcops.secrets), URL user-info, secret query parameters and
    Authorization values masked."""
    text = _USERINFO.sub(r"\1***@", _redact_known(str(text)))
    text = _SECRET_PARAM.sub(r"\1***", text)
    return _AUTH_HEADER.sub(r"\1***", text)


def _ident(name: str) -> str:
    if not name or '"' in name or "\n" in name:
        raise StoreError(f"invalid identifier {name!r}")
    return f'"{name}"'


def _lit(value: str) -> str:
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def influxql_where(where: Where | None) -> str:
    """` AND (...)` clauses for tag filters: a value or any of several values."""
    out = []
    for k, v in (where or {}).items():
        vals = [v] if isinstance(v, str) else list(v)
        if not vals:
            return " AND false"
        out.append("(" + " OR ".join(f"{_ident(k)} = {_lit(x)}" for x in vals) + ")")
    return "".join(" AND " + c for c in out)


def _check_names(b: Batch) -> None:
    for what, names in (("measurement", [b.measurement]), ("tag", b.tags), ("field", b.fields)):
        for name in names:
            if not valid_name(name):
                raise StoreError(f"{what} name {name!r} refused: InfluxDB would drop or misread it")
    if len(b) and (int(b.time_ns.min()) < TIME_MIN_NS or int(b.time_ns.max()) > TIME_MAX_NS):
        raise StoreError(f"{b.measurement}: time outside InfluxDB's range")


class InfluxStore:
    def __init__(self, url: str, database: str = "dcops", rp: str = "raw", *, token: str | None = None,
                 org: str = "dcops", retention_days: float = 7.0, rollups: Sequence[Rollup] = ROLLUPS,
                 measurements: Sequence[str] | None = None, manage_schema: bool = True, chunk_lines: int = 5000,
                 concurrency: int = 2, timeout_s: float = 10.0, max_retries: int = 3, write_timeout_s: float = 60.0,
                 clock: Callable[[], int] = time.time_ns) -> None:
        from influxdb_client import InfluxDBClient, WriteOptions
        from influxdb_client.client.write_api import WriteType
        from reactivex.scheduler import ThreadPoolScheduler

        self.url = url.rstrip("/")
        self.safe_url = redact(self.url)  # what error messages and logs show
        self.database, self.rp = database, rp
        self.retention_days = retention_days
        self.rollups = tuple(rollups)
        self.chunk_lines = chunk_lines
        self.write_timeout_s = write_timeout_s
        self._clock = clock
        if measurements is None:
            from dcops.catalogue import MEASUREMENTS

            measurements = tuple(MEASUREMENTS)
        self.measurements = tuple(measurements)
        headers = {"Authorization": f"Token {token}"} if token else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout_s)
        self._client = InfluxDBClient(url=self.url, token=token or "", org=org, timeout=int(timeout_s * 1000))
        self._org = org
        self._bucket = f"{database}/{rp}"
        self._pending: dict[bytes, deque[Future]] = defaultdict(deque)
        self._plock = threading.Lock()
        self._write_api = self._client.write_api(
            write_options=WriteOptions(write_type=WriteType.batching, batch_size=1, flush_interval=50,
                                       jitter_interval=0, retry_interval=500, max_retries=max_retries,
                                       max_retry_delay=4000, max_retry_time=int(write_timeout_s * 1000),
                                       exponential_base=2, write_scheduler=ThreadPoolScheduler(concurrency)),
            success_callback=self._on_success, error_callback=self._on_error)
        self._keys: dict[str, tuple[list[str], list[str]]] = {}  # measurement -> (tags, fields)
        if manage_schema:
            try:
                self.ensure_schema()
            except BaseException:
                self.close()  # unreachable at start: the caller may wait and build another
                raise

    @classmethod
    def from_settings(cls, settings, **kw) -> "InfluxStore":
        """`bucket` is `database` or `database/retention_policy` (InfluxDB's DBRP naming)."""
        db, _, rp = settings.bucket.partition("/")
        token = settings.token.get_secret_value() if settings.token else None
        return cls(settings.url, db, rp or "raw", token=token, org=settings.org,
                   retention_days=settings.retention_days,
                   **{"manage_schema": getattr(settings, "manage_schema", True), **kw})

    # ----- schema ---------------------------------------------------------------------------
    def ensure_schema(self) -> None:
        """Database, retention policies and rollup continuous queries (InfluxDB 1.x)."""
        db = _ident(self.database)
        self.execute(f"CREATE DATABASE {db}")
        dur = f"{max(1, int(self.retention_days * 24))}h"
        self._create_rp(self.rp, dur, default=True)
        for r in self.rollups:
            self._create_rp(r.rp, r.duration, default=False)
            name = _ident(f"cq_{r.rp}")
            existing = self.execute("SHOW CONTINUOUS QUERIES")
            if any(v[0] == f"cq_{r.rp}" for s in existing for v in s.get("values") or []):
                continue
            self.execute(f"CREATE CONTINUOUS QUERY {name} ON {db} RESAMPLE EVERY {r.every_s}s FOR {r.every_s * 10}s"
                         f" BEGIN {self._rollup_select(r)} END")

    def _create_rp(self, rp: str, duration: str, default: bool) -> None:
        q = f"RETENTION POLICY {_ident(rp)} ON {_ident(self.database)} DURATION {duration} REPLICATION 1"
        q += " DEFAULT" if default else ""
        try:
            self.execute("CREATE " + q)
        except StoreError as exc:
            if "already exists" not in str(exc):
                raise
            self.execute("ALTER " + q)

    def _rollup_select(self, r: Rollup, where: str = "") -> str:
        db = _ident(self.database)
        sources = ", ".join(f"{db}.{_ident(self.rp)}.{_ident(m)}" for m in self.measurements)
        return (f"SELECT mean(*), min(*), max(*) INTO {db}.{_ident(r.rp)}.:MEASUREMENT FROM {sources}"
                f"{where} GROUP BY time({r.every_s}s), *")

    def backfill_rollups(self, start_ns: int, end_ns: int) -> None:
        """Compute the rollups for [start_ns, end_ns) now (continuous queries only see recent data)."""
        for r in self.rollups:
            self.execute(self._rollup_select(r, f" WHERE time >= {int(start_ns)} AND time < {int(end_ns)}"))

    # ----- HTTP -----------------------------------------------------------------------------
    def execute(self, q: str) -> list[dict]:
        """Run InfluxQL statement(s) over /query; returns the first result's series."""
        try:
            resp = self._http.post("/query", params={"db": self.database, "epoch": "ns"}, data={"q": q})
        except httpx.HTTPError as exc:
            raise StoreUnavailable(f"InfluxDB at {self.safe_url} unreachable: {redact(exc)}") from None
        if resp.status_code >= 500 or resp.status_code in (401, 403):
            raise StoreUnavailable(f"InfluxDB at {self.safe_url} answered {resp.status_code}: {redact(resp.text[:200])}")
        try:
            body = resp.json()
        except ValueError:
            raise StoreError(f"InfluxDB answered {resp.status_code} with non-JSON: {redact(resp.text[:200])}") from None
        if "error" in body:
            raise StoreError(f"InfluxQL refused ({body['error']}): {q[:200]}")
        results = body.get("results") or [{}]
        for r in results:
            if "error" in r:
                raise StoreError(f"InfluxQL refused ({r['error']}): {q[:200]}")
        return results[0].get("series") or []

    # ----- writes ---------------------------------------------------------------------------
    def _on_success(self, _conf, data) -> None:
        self._resolve(data, None)

    def _on_error(self, _conf, data, exc) -> None:
        self._resolve(data, exc)

    def _resolve(self, data, exc) -> None:
        key = data.encode() if isinstance(data, str) else bytes(data)
        with self._plock:
            waiting = self._pending.get(key)
            fut = waiting.popleft() if waiting else None
            if waiting is not None and not waiting:
                del self._pending[key]
        if fut is None:
            return
        if exc is None:
            fut.set_result(True)
        else:
            fut.set_exception(exc)

    def _submit(self, bodies: Iterable[bytes]) -> None:
        """Hand each body to the write API as soon as it is built; return once all are acknowledged."""
        futures = []
        for body in bodies:
            fut: Future = Future()
            with self._plock:
                self._pending[body].append(fut)
            futures.append(fut)
            self._write_api.write(bucket=self._bucket, org=self._org, record=body)
        done, not_done = wait(futures, timeout=self.write_timeout_s)
        if not_done:
            raise StoreUnavailable(f"InfluxDB at {self.safe_url} did not acknowledge {len(not_done)} of {len(futures)}"
                                   f" writes within {self.write_timeout_s:.0f}s")
        for f in futures:
            exc = f.exception()
            if exc is not None:
                raise self._translate(exc)

    def _translate(self, exc: Exception) -> StoreError:
        status = getattr(exc, "status", None)
        if status is not None and 400 <= status < 500 and status not in (401, 403, 404, 408, 429):
            body = getattr(exc, "body", "") or getattr(exc, "message", "") or str(exc)
            return StoreError(f"InfluxDB refused the data (HTTP {status}): {redact(str(body)[:300])}")
        return StoreUnavailable(f"InfluxDB write to {self.safe_url} failed: {redact(str(exc)[:300])}")

    def write(self, batches: Sequence[Batch]) -> int:
        for b in batches:  # a name InfluxDB would drop (`#accel` is a comment) is refused, not counted
            _check_names(b)
        try:  # bodies stream out while the next ones are built; a refused value stops the write
            self._submit(batches_to_chunks(batches, self.chunk_lines))
        except (ValueError, TypeError, AttributeError) as exc:
            raise StoreError(str(exc)) from None
        return sum(b.n_values for b in batches)

    def write_events(self, events: Sequence[Event]) -> int:
        for e in events:
            if isinstance(e.time_ns, bool) or not TIME_MIN_NS <= e.time_ns <= TIME_MAX_NS:
                raise StoreError(f"event {e.kind!r}: time {e.time_ns} ns outside InfluxDB's range")
        lines = event_lines(events)
        for i in range(0, len(lines), self.chunk_lines):
            self._submit(["\n".join(lines[i:i + self.chunk_lines]).encode()])
        return len(lines)

    # ----- queries --------------------------------------------------------------------------
    def _schema(self, measurement: str, refresh: bool = False) -> tuple[list[str], list[str]] | None:
        if refresh or measurement not in self._keys:
            m = _ident(measurement)
            fields = [v[0] for s in self.execute(f"SHOW FIELD KEYS FROM {_ident(self.rp)}.{m}") for v in s["values"]]
            if not fields:
                return None
            tags = [v[0] for s in self.execute(f"SHOW TAG KEYS FROM {m}") for v in s["values"]]
            self._keys[measurement] = (tags, fields)
        return self._keys[measurement]

    def _fields(self, measurement: str, fields) -> tuple[list[str], list[str]] | None:
        schema = self._schema(measurement)
        if schema is None:
            return None
        tags, known = schema
        if fields is None:
            return tags, list(known)
        missing = [f for f in fields if f not in known]
        if missing:
            tags, known = self._schema(measurement, refresh=True)
            missing = [f for f in fields if f not in known]
        if missing:
            raise StoreError(f"measurement {measurement!r} has no field {missing[0]!r} (has {sorted(known)[:20]})")
        return tags, list(fields)

    def _series_to_batch(self, measurement: str, series: list[dict], tags: list[str], fields: list[str],
                         names: dict[str, str] | None = None) -> Batch:
        times, tag_cols, field_cols = [], {t: [] for t in tags}, {f: [] for f in fields}
        for s in series:
            cols = s["columns"]
            vals = np.array(s["values"], dtype=object)
            n = len(vals)
            if n == 0:
                continue
            times.append(vals[:, cols.index("time")].astype(np.int64))
            stags = s.get("tags") or {}
            for t in tags:
                tag_cols[t].append(np.full(n, stags.get(t, "") or "", dtype=object))
            for f in fields:
                col = (names or {}).get(f, f)
                if col in cols:
                    field_cols[f].append(np.array([np.nan if v is None else v for v in vals[:, cols.index(col)]],
                                                  dtype=np.float64))
                else:
                    field_cols[f].append(np.full(n, np.nan))
        if not times:
            return Batch.empty(measurement, tags, fields)
        t = np.concatenate(times)
        order = np.argsort(t, kind="stable")
        return Batch(measurement, t[order], {k: np.concatenate(v)[order] for k, v in tag_cols.items()},
                     {k: np.concatenate(v)[order] for k, v in field_cols.items()})

    def latest(self, measurement, fields=None, where=None, max_age_s: float = 900.0) -> Batch:
        found = self._fields(measurement, fields)
        if found is None:
            return Batch.empty(measurement, fields=fields or ())
        tags, flds = found
        src = f"{_ident(self.rp)}.{_ident(measurement)}"
        newest = self.execute(f"SELECT * FROM {src} ORDER BY time DESC LIMIT 1")
        if not newest:
            return Batch.empty(measurement, tags, flds)
        tmax = int(newest[0]["values"][0][0])
        sel = ", ".join(_ident(f) for f in flds)
        q = (f"SELECT {sel} FROM {src} WHERE time >= {tmax - int(max_age_s * NS)}{influxql_where(where)}"
             f" GROUP BY * ORDER BY time DESC LIMIT 1")
        return self._series_to_batch(measurement, self.execute(q), tags, flds)

    def pick_source(self, start_ns: int, end_ns: int, every_s: float | None, agg: str) -> Rollup | None:
        """The rollup a window reads, or None for raw points (the rule DuckDB follows too:
        `dcops.store.rollups.pick_tier`)."""
        return pick_tier(self.rollups, start_ns, end_ns, every_s, agg, self._clock(), self.retention_days)

    def query_range(self, measurement, fields, start_ns, end_ns, every_s=None, agg="mean", where=None,
                    group_by=None) -> Batch:
        found = self._fields(measurement, fields)
        if found is None:
            return Batch.empty(measurement, fields=fields or ())
        tags, flds = found
        rng = f"time >= {int(start_ns)} AND time < {int(end_ns)}{influxql_where(where)}"
        if every_s is None:
            sel = ", ".join(_ident(f) for f in flds)
            q = f"SELECT {sel} FROM {_ident(self.rp)}.{_ident(measurement)} WHERE {rng} GROUP BY *"
            return self._series_to_batch(measurement, self.execute(q), tags, flds)
        if agg not in AGGREGATES:
            raise StoreError(f"unknown aggregate {agg!r} (one of {AGGREGATES})")
        gtags = list(tags) if group_by is None else list(group_by)
        for g in gtags:
            if g not in tags:
                raise StoreError(f"cannot group by {g!r}: not a tag of {measurement!r}")
        rollup = self.pick_source(start_ns, end_ns, every_s, agg)
        rp = rollup.rp if rollup else self.rp
        col = (lambda f: f"{agg}_{f}") if rollup else (lambda f: f)
        sel = ", ".join(f"{agg}({_ident(col(f))}) AS {_ident(f)}" for f in flds)
        every_ns = max(1, int(every_s * NS))
        group = ", ".join([f"time({every_ns}ns)", *(_ident(g) for g in gtags)])
        q = f"SELECT {sel} FROM {_ident(rp)}.{_ident(measurement)} WHERE {rng} GROUP BY {group} fill(none)"
        return self._series_to_batch(measurement, self.execute(q), gtags, flds)

    def events(self, start_ns, end_ns, kinds=None, where=None, limit: int = 10_000) -> list[Event]:
        filters = dict(where or {})
        for k in filters:
            if k not in ("hall", "row", "rack", "device", "kind", "source", "severity"):
                raise StoreError(f"cannot filter events by {k!r}")
        if kinds:
            filters["kind"] = list(kinds)
        q = (f"SELECT * FROM {_ident(self.rp)}.{_ident(EVENT_MEASUREMENT)} WHERE time >= {int(start_ns)}"
             f" AND time < {int(end_ns)}{influxql_where(filters)} ORDER BY time ASC LIMIT {int(limit)}")
        out = []
        for s in self.execute(q):
            cols = s["columns"]
            for row in s["values"]:
                r = dict(zip(cols, row))
                out.append(Event(int(r["time"]), r.get("kind") or "", r.get("source") or "",
                                 json.loads(r.get("target") or "{}"), r.get("severity") or "info",
                                 r.get("message") or "", json.loads(r.get("attributes") or "{}")))
        return out

    def count(self, measurement: str, field: str | None = None) -> int:
        """Points stored in the raw policy: rows with `field`, or rows with any field (the most of any)."""
        if self._fields(measurement, [field] if field else None) is None:
            return 0
        what = f"count({_ident(field)})" if field else "count(*)"
        series = self.execute(f"SELECT {what} FROM {_ident(self.rp)}.{_ident(measurement)}")
        if not series:
            return 0
        return int(max(v or 0 for v in series[0]["values"][0][1:]))

    def enforce_retention(self, now_ns: int) -> int:
        """InfluxDB drops expired shards itself (retention policies); nothing to delete here."""
        return 0

    def close(self) -> None:
        self._write_api.close()
        self._client.close()
        self._http.close()
