"""DuckDB rollups (1 min / 15 min) and retention on a schedule; range queries pick the tier by range."""

from __future__ import annotations

import time

import numpy as np
import pytest

from dcops.batch import Batch
from dcops.store.duckdb_store import DuckDBStore
from dcops.store.influx_store import ROLLUPS
from dcops.store.rollups import TIERS, Housekeeping, Tier, pick_tier

NS = 10**9
T0 = 1_750_000_500 * NS - (1_750_000_500 * NS) % (3600 * NS)  # on the hour
HOUR = 3600 * NS


def rack_batch(t_ns, values, racks=("r1", "r2")):
    return Batch("rack", np.full(len(racks), t_ns, dtype=np.int64),
                 {"site": np.full(len(racks), "s", dtype=object), "rack": np.array(racks, dtype=object)},
                 {"rack_power_w": np.asarray(values, dtype=np.float64)})


def fill(store, hours=2, step_s=10):
    """`hours` of samples every `step_s`: r1's value is the minute index, r2's ten times it;
    every 7th r2 sample is missing (NaN)."""
    n = hours * 3600 // step_s
    i = np.arange(n)
    minute = (i * step_s) // 60
    t = T0 + i * step_s * NS
    r2 = np.where(i % 7 == 0, np.nan, 10.0 * minute)
    store.write([Batch("rack", np.concatenate([t, t]),
                       {"site": np.full(2 * n, "s", dtype=object),
                        "rack": np.array(["r1"] * n + ["r2"] * n, dtype=object)},
                       {"rack_power_w": np.concatenate([minute.astype(np.float64), r2])})])
    return n


class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock(T0 + 3 * HOUR)


@pytest.fixture
def store(tmp_path, clock):
    s = DuckDBStore(tmp_path / "t.duckdb", retention_days=1 / 24, clock=clock)  # raw kept one hour
    yield s
    s.close()


def by_rack(b: Batch, field="rack_power_w"):
    out = {}
    for t, r, v in zip(b.time_ns, b.tags["rack"], b.fields[field]):
        out[(int(t), r)] = float(v)
    return out


def test_the_tiers_match_influxdb():
    assert sorted((t.every_s, t.min_span_s) for t in TIERS) == sorted((r.every_s, r.min_span_s) for r in ROLLUPS)


def test_pick_tier_by_range_step_aggregate_and_age():
    now = T0 + 100 * 24 * HOUR
    day = 24 * HOUR
    assert pick_tier(TIERS, now - HOUR, now, 60, "mean", now, 7) is None                  # short and recent: raw
    assert pick_tier(TIERS, now - 2 * day, now, 300, "mean", now, 7).name == "1m"        # a day or more
    assert pick_tier(TIERS, now - 40 * day, now, 3600, "max", now, 7).name == "15m"     # a month or more
    assert pick_tier(TIERS, now - 40 * day, now, 120, "mean", now, 7).name == "1m"     # step finer than 15 min
    assert pick_tier(TIERS, now - 40 * day, now, 3600, "last", now, 7) is None          # not kept by the tiers
    assert pick_tier(TIERS, now - 40 * day, now, None, "mean", now, 7) is None          # raw rows asked for
    assert pick_tier(TIERS, now - 9 * day, now - 9 * day + HOUR, 60, "mean", now, 7).name == "1m"  # older than raw


def test_rollups_answer_after_retention_deleted_the_raw_rows(store, clock):
    fill(store)
    # what raw rows say, hourly, before anything is deleted (a 2 h range at now - 3 h: older than the raw hour)
    clock.now = T0 + 2 * HOUR + 1  # the range is recent: raw
    raw = {agg: by_rack(store.query_range("rack", ["rack_power_w"], T0, T0 + 2 * HOUR, every_s=3600, agg=agg))
           for agg in ("mean", "min", "max")}
    assert raw["max"][(T0, "r1")] == 59.0 and raw["min"][(T0 + HOUR, "r2")] == 600.0
    clock.now = T0 + 3 * HOUR
    written = store.roll_up(clock.now)
    assert written == 2 * 120 + 2 * 8  # per series: 120 minutes and 8 quarter hours, complete buckets only
    deleted = store.enforce_retention(clock.now)
    assert deleted == store_rows_before_now(2) - 0 and store.count("rack") == 0
    for agg in ("mean", "min", "max"):
        tiered = by_rack(store.query_range("rack", ["rack_power_w"], T0, T0 + 2 * HOUR, every_s=3600, agg=agg))
        assert tiered.keys() == raw[agg].keys()
        for k, v in raw[agg].items():
            assert tiered[k] == pytest.approx(v), (agg, k)
    # a 10-minute step reads the 1 min tier; group_by sums up racks per window
    ten = store.query_range("rack", ["rack_power_w"], T0, T0 + HOUR, every_s=600, agg="max", group_by=[])
    assert list(ten.fields["rack_power_w"]) == [10.0 * m for m in (9, 19, 29, 39, 49, 59)]
    # raw rows are gone: an unaggregated query says so
    assert len(store.query_range("rack", ["rack_power_w"], T0, T0 + 2 * HOUR)) == 0


def store_rows_before_now(racks):
    return racks * 2 * 3600 // 10


def test_late_rows_and_the_unrolled_tail(store, clock):
    fill(store, hours=1)
    clock.now = T0 + HOUR + 30 * NS
    store.roll_up(clock.now)
    # a replayed row in the last complete minute changes that minute's max
    store.write([rack_batch(T0 + 59 * 60 * NS + 20 * NS, [500.0, 590.0])])
    # rows after the watermark (the current, incomplete minute) are read raw, bucketed the same way
    store.write([rack_batch(T0 + HOUR + 10 * NS, [1000.0, 2000.0])])
    clock.now = T0 + 10 * 24 * HOUR  # now the range is older than the raw retention: tiers are read
    before = by_rack(store.query_range("rack", ["rack_power_w"], T0 + 59 * 60 * NS, T0 + HOUR + 60 * NS,
                                       every_s=60, agg="max"))
    assert before[(T0 + HOUR, "r1")] == 1000.0            # raw tail after the 1 min watermark
    assert before[(T0 + 59 * 60 * NS, "r1")] == 59.0      # not rolled again yet
    store.roll_up(T0 + HOUR + 30 * NS)
    after = by_rack(store.query_range("rack", ["rack_power_w"], T0 + 59 * 60 * NS, T0 + HOUR + 60 * NS,
                                      every_s=60, agg="max"))
    assert after[(T0 + 59 * 60 * NS, "r1")] == 500.0 and after[(T0 + HOUR, "r2")] == 2000.0


def test_mean_is_weighted_by_the_samples_present(store, clock):
    fill(store, hours=1)
    store.roll_up(T0 + HOUR)
    clock.now = T0 + 40 * 24 * HOUR
    tiered = by_rack(store.query_range("rack", ["rack_power_w"], T0, T0 + HOUR, every_s=3600, agg="mean"))
    samples = [(i, 10.0 * ((i * 10) // 60)) for i in range(360) if i % 7 != 0]
    assert tiered[(T0, "r2")] == pytest.approx(sum(v for _, v in samples) / len(samples))


def test_tier_rows_expire_after_keep_days(tmp_path):
    clock = Clock(T0 + 2 * HOUR)
    tiers = (Tier("1m", 60, 1 / 24, 24 * 3600), Tier("15m", 900, 1, 30 * 24 * 3600))
    store = DuckDBStore(tmp_path / "k.duckdb", retention_days=1, tiers=tiers, clock=clock)
    try:
        fill(store, hours=2, step_s=60)
        store.roll_up(clock.now)
        store.enforce_retention(clock.now)
        one_minute = store._cur().execute("SELECT min(time), count(*) FROM r1m_rack").fetchall()[0]
        assert one_minute == (T0 + HOUR, 2 * 60)  # the older hour is past the tier's keep_days
        assert store._cur().execute("SELECT count(*) FROM r15m_rack").fetchall()[0][0] == 2 * 8
    finally:
        store.close()


def test_tiers_survive_a_reopen(tmp_path, clock):
    path = tmp_path / "r.duckdb"
    store = DuckDBStore(path, retention_days=1 / 24, clock=clock)
    fill(store, hours=1)
    store.roll_up(T0 + HOUR)
    store.enforce_retention(T0 + 3 * HOUR)
    store.close()
    store = DuckDBStore(path, retention_days=1 / 24, clock=clock)
    try:
        b = store.query_range("rack", ["rack_power_w"], T0, T0 + HOUR, every_s=3600, agg="max")
        assert by_rack(b) == {(T0, "r1"): 59.0, (T0, "r2"): 590.0}
        # the raw rows are gone: rolling up again must not recompute (and so empty) the last buckets
        assert store.roll_up(T0 + HOUR) == 0
        b = store.query_range("rack", ["rack_power_w"], T0, T0 + HOUR, every_s=3600, agg="max")
        assert by_rack(b) == {(T0, "r1"): 59.0, (T0, "r2"): 590.0}
    finally:
        store.close()


def test_housekeeping_rolls_up_and_applies_retention_on_a_schedule(store, clock):
    fill(store, hours=2, step_s=60)
    hk = Housekeeping(store, every_s=0.05, clock=clock).start()
    deadline = time.monotonic() + 10
    while hk.rounds < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    hk.stop()
    assert hk.rounds >= 3  # two on the schedule, one on stop
    assert store.count("rack") == 0 and hk.deleted == 2 * 120  # all older than the raw hour
    b = store.query_range("rack", ["rack_power_w"], T0, T0 + 2 * HOUR, every_s=3600, agg="max")
    assert by_rack(b)[(T0 + HOUR, "r1")] == 119.0 and by_rack(b)[(T0 + HOUR, "r2")] == 1180.0  # 119 % 7 == 0: NaN


def test_housekeeping_survives_a_failing_store(clock, caplog):
    class Broken:
        calls = 0

        def enforce_retention(self, now):
            Broken.calls += 1
            raise OSError("disk gone")

    hk = Housekeeping(Broken(), every_s=0.02, clock=clock).start()
    deadline = time.monotonic() + 10
    while Broken.calls < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    hk.stop(final=False)
    assert Broken.calls >= 3 and hk.rounds == 0
    assert sum("housekeeping" in r.message for r in caplog.records) == 1  # logged once, not every round
