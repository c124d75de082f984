"""The console's reads (dcops.console.data, dcops.console.data_series) over a DuckDB store with known values."""

from __future__ import annotations

import time

import numpy as np
import pytest

from dcops.console import data, data_series
from dcops.store.duckdb_store import DuckDBStore
from tests.console.fake_site import NS, site_batches


def ctx_for(store, inv, **kw):
    return data.Context(store, inv, **kw)


def test_floor_snapshot_values(filled_store, small_inventory):
    snap = data.floor_snapshot(ctx_for(filled_store, small_inventory))
    racks = snap.racks
    assert list(racks.index) == [r.name for r in small_inventory.racks]
    assert racks.at["R1-01", "inlet_degc"] == 33.0 and racks.at["R1-02", "inlet_degc"] == 24.0
    assert (racks.loc[["R1-01", "R2-03"], "position"] == [0, 2]).all()
    # R1-02-S01:1 throttles (hot, degraded); R2-01-S01:0 is down
    assert racks.at["R1-02", "accel_degraded"] == 1 and racks.at["R1-02", "hottest_degc"] > 80
    assert racks.at["R2-01", "accel_down"] == 1 and racks.at["R2-01", "accel_healthy"] == 7
    assert racks["accel_total"].sum() == small_inventory.n_accel
    assert snap.accel_by_vendor.loc["nvidia", "healthy"] == 26
    assert snap.accel_by_vendor.loc["rebellions", "healthy"] == 16
    assert snap.pue == pytest.approx(1.3)
    assert snap.it_power_kw == pytest.approx(racks["power_kw"].sum())
    assert snap.incidents_by_severity is None  # no alarm API given


def test_accelerators_without_samples_are_no_data(small_inventory):
    store = DuckDBStore(":memory:")
    batches = site_batches(small_inventory, time.time_ns())
    accel = batches[0]
    store.write([accel.select(accel.tags["rack"] != "R2-03"), *batches[1:]])
    snap = data.floor_snapshot(ctx_for(store, small_inventory))
    assert snap.racks.at["R2-03", "accel_no_data"] == 8
    assert np.isnan(snap.racks.at["R2-03", "hottest_degc"])
    assert snap.accel_by_vendor.loc["rebellions", "no data"] == 8


def test_empty_store_gives_an_empty_floor_not_an_error(small_inventory):
    snap = data.floor_snapshot(ctx_for(DuckDBStore(":memory:"), small_inventory))
    assert snap.time_ns == 0 and snap.pue is None
    assert (snap.racks["accel_no_data"] == snap.racks["accel_total"]).all()
    assert snap.racks["inlet_degc"].isna().all()


def test_floor_snapshot_reads_ranges_only_once_per_tick(filled_store, small_inventory):
    calls = []

    class Counting:
        def __getattr__(self, name):
            return getattr(filled_store, name)

        def latest(self, *a, **kw):
            calls.append(("latest", a[0]))
            return filled_store.latest(*a, **kw)

        def query_range(self, *a, **kw):
            calls.append(("range", a[0]))
            return filled_store.query_range(*a, **kw)

    now = [1000.0]
    ctx = ctx_for(Counting(), small_inventory, refresh_s=5.0, clock=lambda: now[0])
    data.floor_snapshot(ctx)  # a process that does not ingest: its view catches up by range reads
    assert calls and all(kind == "range" for kind, _ in calls)
    first = len(calls)
    data.floor_snapshot(ctx)
    assert len(calls) == first  # same tick: cached
    now[0] += 5.0
    data.floor_snapshot(ctx)
    assert all(kind == "range" for kind, _ in calls)


def test_floor_follows_the_view_ingest_feeds_without_asking_the_store(small_inventory):
    from dcops.store.current import current_view

    class NoReads:
        path, url = ":memory:", None

        def __getattr__(self, name):
            if name.startswith("_"):
                raise AttributeError(name)
            raise AssertionError(f"the floor asked the store for {name}")

    store = NoReads()
    now = [1000.0]
    ctx = ctx_for(store, small_inventory, refresh_s=5.0, clock=lambda: now[0])
    current_view(store).update(site_batches(small_inventory, time.time_ns(), inlet={"R1-01": 31.0}))
    assert data.floor_snapshot(ctx).racks.at["R1-01", "inlet_degc"] == 31.0
    current_view(store).update(site_batches(small_inventory, time.time_ns() + NS, inlet={"R1-01": 35.0},
                                            down=("R2-01-S01:0",)))
    now[0] += 5.0
    snap = data.floor_snapshot(ctx)
    assert snap.racks.at["R1-01", "inlet_degc"] == 35.0 and snap.racks.at["R2-01", "accel_down"] == 1
    assert data.rack_view(ctx, "R1-01").rack_values["rack_inlet_temp_degc"] == 35.0


def test_rack_view_lists_servers_accelerators_and_feeds(filled_store, small_inventory):
    view = data.rack_view(ctx_for(filled_store, small_inventory), "R1-03")
    assert view.feeds == {"A": "PDU-A1"}
    assert list(view.servers["device"]) == ["R1-03-S01"] and view.servers.at[0, "feeds"] == "A"
    assert len(view.accels) == 4 and set(view.accels["model"]) == {"L40S"}
    assert list(view.pdus["name"]) == ["PDU-A1"] and view.pdus.at[0, "power_kw"] == pytest.approx(20.0)
    assert view.rack_values["rack_inlet_temp_degc"] == 24.0
    with pytest.raises(KeyError, match="not a rack"):
        data.rack_view(ctx_for(filled_store, small_inventory), "R1-03-S01")
    with pytest.raises(KeyError, match="no component named 'R9-99'"):
        data.rack_view(ctx_for(filled_store, small_inventory), "R9-99")


def test_device_series_downsampled_and_events(filled_store, small_inventory):
    ctx = ctx_for(filled_store, small_inventory)
    spec, frame = data_series.device_series(ctx, "R1-01", "15m")
    assert spec.measurement == "rack"
    assert len(frame) == 11 and (frame["rack_inlet_temp_degc"] == 33.0).all()
    spec, frame = data_series.device_series(ctx, "R2-01-S01:1", "1h")
    assert len(frame) == 11 and frame["accel_power_w"].notna().all()
    assert frame["accel_mem_temp_degc"].isna().all()  # never sent: charted as empty, no error
    events = data_series.device_events(ctx, "R2-01-S01:0", "1h")
    assert [e.kind for e in events] == ["xid"]
    assert data_series.device_events(ctx, "R2-01-S01:1", "1h") == []
    assert [e.kind for e in data_series.device_events(ctx, "R2-01", "1h")] == ["xid"]
    with pytest.raises(KeyError, match="unknown range"):
        data_series.device_series(ctx, "R1-01", "2y")
    with pytest.raises(KeyError, match="no metrics are charted"):
        data_series.device_series(ctx, "Z1", "1h")


def test_search_finds_by_name_and_path(small_inventory, filled_store):
    ctx = ctx_for(filled_store, small_inventory)
    names = [c.name for c in data_series.search(ctx, "r1-03")]
    assert names[0] == "R1-03" and "R1-03-S01:2" in names
    assert [c.name for c in data_series.search(ctx, "crac-4")] == ["CRAC-4"]
    assert data_series.search(ctx, "  ") == []
    assert len(data_series.search(ctx, "S0", limit=5)) == 5


def test_fleet_table_compares_vendors(filled_store, small_inventory):
    ctx = ctx_for(filled_store, small_inventory, energy_price_per_kwh=0.2)
    t = data_series.fleet_table(ctx).set_index(["vendor", "model"])
    h100 = t.loc[("nvidia", "H100-SXM5-80GB")]
    assert h100["count"] == 24 and h100["reporting"] == 23  # one is down
    assert h100["power_w"] == pytest.approx(490.0)
    assert h100["tokens_per_s"] == pytest.approx(23 * 1000.0, rel=1e-6)
    assert h100["j_per_token"] == pytest.approx(23 * 490.0 / 23_000.0, rel=1e-6)
    assert h100["cost_per_h"] == pytest.approx(23 * 490.0 / 1e3 * 0.2)
    rbln = t.loc[("rebellions", "RBLN-CA22")]
    assert rbln["tokens_per_s"] == pytest.approx(16 * 400.0, rel=1e-6)
    assert rbln["headroom_degc"] == pytest.approx(85.0 - rbln["hottest_degc"])
    assert t.loc[("nvidia", "L40S"), "headroom_degc"] == pytest.approx(88.0 - t.loc[("nvidia", "L40S"), "hottest_degc"])
    trends = data_series.fleet_trends(ctx, "1h")
    assert set(trends["vendor"]) == {"nvidia", "rebellions"} and trends["accel_power_w"].notna().all()


def test_fleet_table_without_tokens(small_inventory):
    store = DuckDBStore(":memory:")
    b = site_batches(small_inventory, time.time_ns())
    acc = b[0]
    store.write([type(acc)(acc.measurement, acc.time_ns, acc.tags,
                           {k: v for k, v in acc.fields.items() if k != "accel_tokens_total"}), *b[1:]])
    t = data_series.fleet_table(ctx_for(store, small_inventory))
    assert t["tokens_per_s"].isna().all() and t["j_per_token"].isna().all() and t["power_w"].notna().all()
