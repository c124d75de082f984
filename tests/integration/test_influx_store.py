"""InfluxStore against a real influxd 1.6 behind the /api/v2/write route (as InfluxDB 1.8 serves it)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from dcops.batch import Batch, Event
from dcops.store.base import StoreError, StoreUnavailable
from tests.integration.datapath_fixtures import influx_with_route

pytestmark = pytest.mark.slow
NS = 1_000_000_000


@pytest.fixture(scope="module")
def influx():
    with influx_with_route(pytest.skip) as pair:
        yield pair


@pytest.fixture
def store(influx, request):
    from dcops.store.influx_store import InfluxStore

    st = InfluxStore(influx[1].url, f"t_{request.node.name[:40]}", timeout_s=3, max_retries=1, write_timeout_s=15)
    yield st
    st.close()


def _accel(t0: int, n_steps: int, racks=("R1-01", "R1-02"), per_rack=4, step_s=10) -> Batch:
    rows = [(t0 + k * step_s * NS, r, f"{r}-s:{i}") for k in range(n_steps) for r in racks for i in range(per_rack)]
    t = np.array([x[0] for x in rows], dtype=np.int64)
    return Batch("accel", t, {"rack": np.array([x[1] for x in rows], dtype=object),
                              "accel": np.array([x[2] for x in rows], dtype=object)},
                 {"accel_power_w": np.arange(len(rows), dtype=float),
                  "accel_temp_degc": np.where(np.arange(len(rows)) % 5 == 0, np.nan, 60.0)})


def _now_s() -> int:
    return (time.time_ns() // NS // 3600 - 2) * 3600  # two hours ago, on the hour


def test_write_is_idempotent_and_queries_round_trip(store):
    t0 = _now_s() * NS
    b = _accel(t0, 30)
    assert store.write([b]) == b.n_values
    store.write([b])  # a replay: same points overwrite
    assert store.count("accel") == len(b)
    raw = store.query_range("accel", ["accel_power_w", "accel_temp_degc"], t0, t0 + 3600 * NS)
    assert len(raw) == len(b) and np.all(np.diff(raw.time_ns) >= 0)
    got = dict(zip(raw.tags["accel"] + "@" + raw.time_ns.astype(str), raw.fields["accel_power_w"]))
    want = dict(zip(b.tags["accel"] + "@" + b.time_ns.astype(str), b.fields["accel_power_w"]))
    assert got == want
    assert np.isnan(raw.fields["accel_temp_degc"]).sum() == np.isnan(b.fields["accel_temp_degc"]).sum()
    latest = store.latest("accel", ["accel_power_w"], where={"rack": "R1-02"})
    assert len(latest) == 4 and set(latest.tags["rack"]) == {"R1-02"}
    assert (latest.time_ns == t0 + 29 * 10 * NS).all()
    agg = store.query_range("accel", ["accel_power_w"], t0, t0 + 300 * NS, every_s=60, agg="max", group_by=["rack"])
    assert len(agg) == 10 and set(agg.tags) == {"rack"}
    r1 = agg.select(agg.tags["rack"] == "R1-01")
    expect = [b.fields["accel_power_w"][(b.tags["rack"] == "R1-01") & (b.time_ns >= t0 + w * 60 * NS)
                                        & (b.time_ns < t0 + (w + 1) * 60 * NS)].max() for w in range(5)]
    assert r1.fields["accel_power_w"].tolist() == expect


def test_unknown_field_and_aggregate_are_clear_errors(store):
    t0 = _now_s() * NS
    store.write([_accel(t0, 1)])
    with pytest.raises(StoreError, match="no field 'accel_bogus_w'"):
        store.latest("accel", ["accel_bogus_w"])
    with pytest.raises(StoreError, match="unknown aggregate"):
        store.query_range("accel", ["accel_power_w"], t0, t0 + NS, every_s=60, agg="median")
    assert len(store.latest("pdu")) == 0  # nothing written yet: empty, not an error


def test_events_round_trip_with_filters(store):
    t0 = _now_s() * NS
    evs = [Event(t0 + i * NS, kind, "agent", {"rack": rack, "device": "gpu-1", "accel": "gpu-1:0"}, "major",
                 f"msg {i} with 'quotes' and \"double\"", {"xid": 79 + i}) for i, (kind, rack) in
           enumerate([("xid", "R1-01"), ("accel_lost", "R1-01"), ("xid", "R2-01")])]
    assert store.write_events(evs) == 3
    got = store.events(t0, t0 + 10 * NS, kinds=["xid"])
    assert [e.attributes["xid"] for e in got] == [79, 81]
    assert got[0] == evs[0]
    assert [e.kind for e in store.events(t0, t0 + 10 * NS, where={"rack": "R1-01"})] == ["xid", "accel_lost"]


def test_rollups_serve_long_windows(store):
    hours = 26  # a window longer than a day reads the 1-minute rollup
    t0 = (_now_s() - hours * 3600) * NS
    b = _accel(t0, hours * 360 // 6, racks=("R1-01",), per_rack=1, step_s=60)  # one point a minute
    store.write([b])
    store.backfill_rollups(t0, t0 + hours * 3600 * NS)
    end = t0 + hours * 3600 * NS
    assert store.pick_source(t0, end, 900, "mean").rp == "rollup_1m"
    assert store.pick_source(t0, t0 + 3600 * NS, 900, "mean") is None
    assert store.pick_source(t0, end, 900, "last") is None  # not rolled up: raw
    rolled = store.query_range("accel", ["accel_power_w"], t0, end, every_s=900, agg="mean")
    raw = store.query_range("accel", ["accel_power_w"], t0, t0 + 3600 * NS, every_s=900, agg="mean")
    assert len(rolled) == hours * 4
    np.testing.assert_allclose(rolled.fields["accel_power_w"][:4], raw.fields["accel_power_w"][:4])
    series = store.execute('SHOW RETENTION POLICIES')
    names = {v[0]: v for v in series[0]["values"]}
    assert {"raw", "rollup_1m", "rollup_15m"} <= set(names) and names["raw"][4] is True


def test_refused_data_and_unreachable_server_raise_distinct_errors(store, influx):
    import httpx

    from dcops.store.influx_store import InfluxStore

    t0 = _now_s() * NS
    # another writer made rack_power_w a string field: InfluxDB refuses floats for it (HTTP 400)
    r = httpx.post(f"{influx[1].url}/write", params={"db": store.database, "rp": "raw"},
                   content=f'rack,rack=R9 rack_power_w="oops" {t0}')
    assert r.status_code == 204
    floats = Batch("rack", np.array([t0 + NS], dtype=np.int64), {"rack": np.array(["R9"], dtype=object)},
                   {"rack_power_w": np.array([1.0])})
    with pytest.raises(StoreError) as refused:
        store.write([floats])
    assert not isinstance(refused.value, StoreUnavailable) and "HTTP 400" in str(refused.value)
    nowhere = InfluxStore("http://127.0.0.1:9", "x", timeout_s=1, max_retries=0, write_timeout_s=5,
                          manage_schema=False)
    with pytest.raises(StoreUnavailable):
        nowhere.write([_accel(t0, 1)])
    with pytest.raises(StoreUnavailable):
        nowhere.latest("accel")
    nowhere.close()
