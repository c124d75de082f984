"""The current-state view (dcops.store.current): latest per (series, field) kept on the write
path, idempotent under replays, aggregates per group, rebuilt from the store's ranges."""

from __future__ import annotations

import numpy as np
import pytest

from dcops.batch import Batch
from dcops.store.base import StoreError
from dcops.store.current import CurrentState, current_view
from dcops.store.duckdb_store import DuckDBStore

NS = 1_000_000_000
T0 = 1_800_000_000 * NS


def accel(t_s: float, temps, racks=("r1", "r1", "r2"), up=None, tokens=None) -> Batch:
    n = len(temps)
    fields = {"accel_temp_degc": temps, "accel_up": up if up is not None else np.ones(n)}
    if tokens is not None:
        fields["accel_tokens_total"] = tokens
    return Batch("accel", np.full(n, T0 + int(t_s * NS)),
                 {"rack": list(racks), "device": [f"{r}-s1" for r in racks], "accel": [str(i) for i in range(n)],
                  "vendor": ["nvidia", "nvidia", "rebellions"][:n]}, fields)


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_latest_value_per_series_newest_wins_and_replays_are_harmless():
    view = CurrentState()
    view.update([accel(0, [50.0, 51.0, 52.0])])
    view.update([accel(10, [60.0, np.nan, 62.0])])
    view.update([accel(0, [1.0, 1.0, 1.0])])  # a replay of an older poll changes nothing
    got = view.read("accel", ["accel_temp_degc"])
    assert len(got) == 3 and set(got.time_ns) == {T0 + 10 * NS}
    by = dict(zip(got.tags["accel"], got.fields["accel_temp_degc"]))
    assert by["0"] == 60.0 and np.isnan(by["1"]) and by["2"] == 62.0  # the newest reading says "no value"
    view.update([accel(10, [61.0, 61.0, 61.0])])  # same time again: replaced, as the store does
    assert set(view.read("accel", ["accel_temp_degc"]).fields["accel_temp_degc"]) == {61.0}


def test_rows_of_one_series_in_one_batch_keep_the_newest_whatever_their_order():
    view = CurrentState()
    b = Batch("rack", np.array([T0 + 20 * NS, T0, T0 + 10 * NS]), {"rack": ["r1", "r1", "r1"]},
              {"rack_power_w": [3.0, 1.0, 2.0]})
    view.update([b])
    got = view.read("rack")
    assert len(got) == 1 and got.fields["rack_power_w"][0] == 3.0 and got.time_ns[0] == T0 + 20 * NS


def test_stale_fields_read_as_nan_and_silent_series_drop_out():
    view = CurrentState()
    view.update([accel(0, [50.0, 51.0, 52.0])])
    view.update([accel(100, [55.0, 56.0], racks=("r1", "r1"))])  # accel 2 (r2) stopped reporting
    got = view.read("accel", ["accel_temp_degc"], max_age_s=60)
    assert sorted(got.tags["accel"]) == ["0", "1"]
    assert len(view.read("accel", ["accel_temp_degc"], max_age_s=600)) == 3


def test_filters_unknown_fields_and_measurements():
    view = CurrentState()
    view.update([accel(0, [50.0, 51.0, 52.0])])
    assert list(view.read("accel", ["accel_temp_degc"], where={"rack": "r2"}).fields["accel_temp_degc"]) == [52.0]
    assert len(view.read("accel", where={"rack": ["r1", "r9"]})) == 2
    assert len(view.read("accel", where={"rack": "r9"})) == 0
    with pytest.raises(StoreError, match="no field"):
        view.read("accel", ["accel_bogus"])
    with pytest.raises(StoreError, match="unknown tag"):
        view.read("accel", where={"zone": "z1"})
    assert len(view.read("never_written")) == 0
    view.update([accel(5, [53.0], racks=("r3",))])  # a new series after a filtered read
    assert len(view.read("accel", where={"rack": "r3"})) == 1


def test_aggregates_per_tag_and_per_mapped_group_skip_stale_values():
    view = CurrentState()
    view.update([accel(0, [50.0, 70.0, 52.0])])
    hottest = view.aggregate("accel", "accel_temp_degc", by="rack", how="max")
    assert hottest.to_dict() == {"r1": 70.0, "r2": 52.0}
    zones = {"r1": "z1", "r2": "z1"}
    assert view.aggregate("accel", "accel_temp_degc", by="rack", how="mean", groups=zones).to_dict() == {
        "z1": pytest.approx(172.0 / 3)}
    view.update([accel(300, [60.0], racks=("r2",))])
    assert view.aggregate("accel", "accel_temp_degc", by="rack", how="count", max_age_s=60).to_dict() == {"r2": 1}


def test_counter_rate_between_the_last_two_samples():
    view = CurrentState()
    view.update([accel(0, [50.0, 50.0, 50.0], tokens=[0.0, 100.0, np.nan])])
    view.update([accel(10, [50.0, 50.0, 50.0], tokens=[1000.0, 50.0, 7.0])])
    r = view.rate("accel", "accel_tokens_total")
    by = dict(zip(r.tags["accel"], r.fields["accel_tokens_total"]))
    assert by["0"] == 100.0 and np.isnan(by["1"]) and np.isnan(by["2"])  # reset; first sample
    with pytest.raises(StoreError, match="not a counter"):
        view.rate("accel", "accel_temp_degc")


def test_rebuild_after_restart_reads_only_the_most_recent_window():
    store = DuckDBStore(":memory:")
    for k in range(0, 601, 60):
        store.write([accel(k, [50.0 + k, 51.0, 52.0])])
    view = CurrentState()
    rows = view.rebuild(store, now_ns=T0 + 601 * NS, window_s=120)
    assert rows == 6  # the last two polls, not ten minutes
    assert view.read("accel", ["accel_temp_degc"], where={"accel": "0"}).fields["accel_temp_degc"][0] == 650.0
    later = CurrentState()  # a clock far from the data (replayed or simulated time): the newest window
    assert later.rebuild(store, now_ns=T0 + 86400 * 30 * NS, window_s=120) >= 6  # at least the window
    assert later.newest_ns("accel") == T0 + 600 * NS
    assert later.read("accel", ["accel_temp_degc"], where={"accel": "0"}).fields["accel_temp_degc"][0] == 650.0


def test_a_view_nobody_feeds_catches_up_by_range_reads():
    store = DuckDBStore(":memory:")
    clock = FakeClock()
    view = CurrentState(clock=clock)
    store.write([accel(0, [50.0, 51.0, 52.0])])
    assert view.sync(store, now_ns=T0 + NS) == 3
    store.write([accel(10, [60.0, 61.0, 62.0])])
    assert view.sync(store, now_ns=T0 + 11 * NS) == 0  # within sync_every_s: shared with the tick's readers
    clock.t += 2
    assert view.sync(store, now_ns=T0 + 11 * NS) == 6  # the rows at or after the newest held (T0), not history
    assert view.read("accel", ["accel_temp_degc"], where={"accel": "0"}).fields["accel_temp_degc"][0] == 60.0
    view.update([accel(20, [70.0, 71.0, 72.0])])  # now the write path feeds it: no more reads
    clock.t += 2
    assert view.sync(store, now_ns=T0 + 21 * NS) == 0


def test_one_view_per_store_location(tmp_path):
    a = DuckDBStore(tmp_path / "t.duckdb")
    b = DuckDBStore(tmp_path / "t.duckdb")
    assert current_view(a) is current_view(b)
    assert current_view(DuckDBStore(":memory:")) is not current_view(DuckDBStore(":memory:"))
    a.close()
    b.close()


def test_cost_of_a_read_does_not_grow_with_history():
    view = CurrentState()
    n = 20_000
    racks = np.array([f"r{i // 64}" for i in range(n)], dtype=object)
    tags = {"rack": racks, "device": racks, "accel": np.arange(n).astype(str).astype(object)}
    for k in range(30):  # thirty polls: the view holds one slot per series, not thirty
        view.update([Batch("accel", np.full(n, T0 + k * 10 * NS), tags, {"accel_temp_degc": np.full(n, 50.0 + k)})])
    got = view.read("accel", ["accel_temp_degc"])
    assert len(got) == n and (got.fields["accel_temp_degc"] == 79.0).all()


def test_align_places_values_in_the_callers_order_and_marks_what_is_missing_or_stale():
    view = CurrentState()
    view.update([accel(0, [50.0, 51.0, 52.0], tokens=[0.0, 0.0, 0.0])])
    view.update([accel(60, [60.0, 61.0], racks=("r1", "r1"), tokens=[600.0, 300.0])])
    keys = np.asarray(["r2-s1:2", "r1-s1:0", "r9-s1:0", "r1-s1:1"], dtype=object)  # device:accel
    got = view.align("accel", ["accel_temp_degc", "accel_bogus"], ("device", "accel"), keys, max_age_s=30)
    assert got["accel_temp_degc"][1:2].tolist() == [60.0] and got["accel_temp_degc"][3] == 61.0
    assert np.isnan(got["accel_temp_degc"][0]) and np.isnan(got["accel_temp_degc"][2])  # stale; unknown
    assert np.isnan(got["accel_bogus"]).all()
    sub = view.align("accel", ["accel_temp_degc"], ("device", "accel"), keys, max_age_s=30, at=np.array([3, 1]))
    assert sub["accel_temp_degc"].tolist() == [61.0, 60.0]
    rates = view.align_rate("accel", "accel_tokens_total", ("device", "accel"), keys)
    assert rates[1] == 10.0 and rates[3] == 5.0 and np.isnan(rates[0]) and np.isnan(rates[2])
