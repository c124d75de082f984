"""The DuckDB store: bulk writes, idempotency on (measurement, tags, time), queries, retention."""

from __future__ import annotations

import numpy as np
import pytest

from dcops.batch import Batch, Event
from dcops.store import StoreError
from dcops.store.duckdb_store import DuckDBStore

NS = 10**9
T0 = 1_750_000_020 * NS  # a multiple of 60 s, so windows start at T0


def batch(t_s, racks=("r1", "r2"), value=1.0, fields=("rack_power_w",)):
    n = len(racks)
    return Batch("rack", np.full(n, T0 + t_s * NS), {"site": "s", "rack": np.array(racks, dtype=object)},
                 {f: np.full(n, value) + np.arange(n) for f in fields})


@pytest.fixture
def store(tmp_path):
    s = DuckDBStore(tmp_path / "t.duckdb", retention_days=1)
    yield s
    s.close()


def test_replayed_writes_do_not_duplicate(store):
    b = batch(0)
    assert store.write([b]) == 2
    store.write([b, b])
    assert store.count("rack") == 2
    store.write([batch(0, value=5.0)])  # same series, same time: replaced
    assert store.count("rack") == 2
    latest = store.latest("rack", ["rack_power_w"])
    assert sorted(latest.fields["rack_power_w"]) == [5.0, 6.0]


def test_different_tags_are_different_series(store):
    store.write([batch(0, racks=("r1",)), batch(0, racks=("r2",))])
    a = Batch("rack", np.array([T0]), {"site": "other", "rack": np.array(["r1"], dtype=object)}, {"rack_power_w": [9.0]})
    store.write([a])
    assert store.count("rack") == 3


def test_latest_per_series_and_filters(store):
    for t in range(5):
        store.write([batch(t * 10, value=float(t))])
    latest = store.latest("rack", ["rack_power_w"])
    assert len(latest) == 2 and set(latest.time_ns) == {T0 + 40 * NS}
    only = store.latest("rack", ["rack_power_w"], where={"rack": "r2"})
    assert list(only.tags["rack"]) == ["r2"] and only.fields["rack_power_w"][0] == 5.0
    assert len(store.latest("rack", where={"rack": ["r1", "r2"]})) == 2


def test_range_with_windows_and_aggregates(store):
    for t in range(0, 120, 10):
        store.write([batch(t, value=float(t))])
    raw = store.query_range("rack", ["rack_power_w"], T0, T0 + 120 * NS, where={"rack": "r1"})
    assert len(raw) == 12 and np.all(np.diff(raw.time_ns) > 0)
    mean = store.query_range("rack", ["rack_power_w"], T0, T0 + 120 * NS, every_s=60, where={"rack": "r1"})
    assert list(mean.fields["rack_power_w"]) == [25.0, 85.0]
    mx = store.query_range("rack", ["rack_power_w"], T0, T0 + 120 * NS, every_s=60, agg="max", group_by=["site"])
    assert list(mx.fields["rack_power_w"]) == [51.0, 111.0] and list(mx.tags) == ["site"]
    last = store.query_range("rack", ["rack_power_w"], T0, T0 + 120 * NS, every_s=60, agg="last", where={"rack": "r1"})
    assert list(last.fields["rack_power_w"]) == [50.0, 110.0]


def test_missing_values_are_null_not_zero(store):
    b = Batch("rack", np.array([T0, T0]), {"rack": np.array(["a", "b"], dtype=object)}, {"rack_power_w": [np.nan, 4.0]})
    assert store.write([b]) == 1
    mean = store.query_range("rack", ["rack_power_w"], T0, T0 + NS, every_s=1, group_by=[])
    assert mean.fields["rack_power_w"][0] == 4.0


def test_new_fields_and_tags_extend_the_table(store):
    store.write([batch(0)])
    store.write([batch(10, fields=("rack_power_w", "rack_inlet_temp_degc"))])
    latest = store.latest("rack")
    assert "rack_inlet_temp_degc" in latest.fields


def test_bad_queries_name_the_problem(store):
    store.write([batch(0)])
    with pytest.raises(StoreError, match="no field 'nope'"):
        store.latest("rack", ["nope"])
    with pytest.raises(StoreError, match="unknown aggregate"):
        store.query_range("rack", ["rack_power_w"], 0, T0 * 2, every_s=10, agg="median")
    with pytest.raises(StoreError, match="invalid"):
        store.latest("rack; drop table x")
    with pytest.raises(StoreError, match="infinite"):
        store.write([batch(0, value=np.inf)])
    assert len(store.latest("never_written")) == 0


def test_events_are_idempotent_and_filterable(store):
    e1 = Event(T0, "xid", "nvml", {"rack": "r1", "device": "s1"}, "major", "XID 48", {"xid": 48})
    e2 = Event(T0 + NS, "breaker_trip", "sim", {"hall": "H1", "device": "PDU-A1"}, "critical")
    store.write_events([e1, e2, e1])
    store.write_events([e1])
    got = store.events(T0, T0 + 10 * NS)
    assert [e.kind for e in got] == ["xid", "breaker_trip"]
    assert got[0].attributes["xid"] == 48
    assert [e.kind for e in store.events(T0, T0 + 10 * NS, where={"rack": "r1"})] == ["xid"]
    assert [e.kind for e in store.events(T0, T0 + 10 * NS, kinds=["breaker_trip"])] == ["breaker_trip"]


def test_retention_and_reopen(tmp_path):
    path = tmp_path / "r.duckdb"
    s = DuckDBStore(path, retention_days=1)
    s.write([batch(0), batch(2 * 86400)])
    assert s.enforce_retention(T0 + int(2.5 * 86400) * NS) == 2
    s.close()
    again = DuckDBStore(path)
    assert again.count("rack") == 2 and "rack" in again.measurements()
    again.close()


def test_merged_small_batches_keep_series_identity(store):
    """Batches written together (merged per measurement) or alone give the same series."""
    a = Batch("accel", np.array([T0]), {"rack": np.array(["r1"], dtype=object)}, {"accel_power_w": [1.0]})
    b = Batch("accel", np.array([T0]), {"rack": np.array(["r2"], dtype=object), "uuid": np.array(["GPU-1"], dtype=object)},
              {"accel_temp_degc": [50.0]})
    store.write([a, b])
    store.write([a])
    store.write([b])
    assert store.count("accel") == 2
