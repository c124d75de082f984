"""Impossible telemetry is refused at the edge with a clear event, and nothing else is lost."""

from __future__ import annotations

import numpy as np

from dcops.batch import Batch
from dcops.bus import TOPIC_EVENTS, TOPIC_SAMPLES, InProcessBus, publish_batch
from dcops.codec import decode


def batch():
    return Batch("accel", np.array([7, 7, 7]), {"site": "s", "rack": "r1", "device": "srv1",
                                               "accel": np.array(["0", "1", "2"], dtype=object)},
                 {"accel_power_w": [350.0, -20.0, np.nan], "accel_temp_degc": [55.0, np.inf, 60.0],
                  "accel_util_pct": [50.0, 40.0, 30.0]})


def test_publish_refuses_impossible_values_and_reports_them():
    bus = InProcessBus()
    samples = bus.consumer(TOPIC_SAMPLES, "t")
    events = bus.consumer(TOPIC_EVENTS, "t")
    publish_batch(bus, batch(), key="r1")
    (m,) = samples.poll(0.1)
    got = decode(m.value)
    assert got.fields["accel_power_w"][0] == 350.0 and np.isnan(got.fields["accel_power_w"][1])
    assert np.isnan(got.fields["accel_temp_degc"][1]) and got.fields["accel_temp_degc"][2] == 60.0
    assert list(got.fields["accel_util_pct"]) == [50.0, 40.0, 30.0]  # the rest of the row survives
    (e,) = events.poll(0.1)
    evs = decode(e.value)
    assert [(x.kind, x.attributes["metric"]) for x in evs] == [("telemetry_rejected", "accel_power_w"),
                                                               ("telemetry_rejected", "accel_temp_degc")]
    power = evs[0]
    assert power.target["device"] == "srv1" and power.target["accel"] == "1"
    assert power.attributes["value"] == -20.0
    assert "accel.accel_power_w = -20 from r1/srv1/1: outside the valid range 0..1e+09 W" == power.message
    assert evs[1].attributes["value"] == "inf" and "not finite" in evs[1].message


def test_clean_batches_pass_untouched():
    bus = InProcessBus()
    events = bus.consumer(TOPIC_EVENTS, "t")
    b = Batch("ups", np.array([1]), {"device": "UPS-A"}, {"ups_battery_current_a": [-12.0], "ups_output_load_pct": [105.0]})
    publish_batch(bus, b)
    assert events.poll(0.05) == []


def test_a_storm_of_bad_values_is_capped_and_counted():
    from dcops.validate import MAX_EVENTS_PER_BATCH, check_batch, rejection_events

    n = 120
    b = Batch("rack", np.zeros(n, dtype=np.int64), {"rack": np.array([f"r{i}" for i in range(n)], dtype=object)},
              {"rack_power_w": np.full(n, -1.0)})
    clean, rejected = check_batch(b)
    assert len(rejected) == n and np.isnan(clean.fields["rack_power_w"]).all()
    evs = rejection_events(b, rejected)
    assert len(evs) == MAX_EVENTS_PER_BATCH
    assert evs[-1].attributes["more_rejected_in_batch"] == n - MAX_EVENTS_PER_BATCH


def test_small_and_large_batches_reject_the_same_values():
    """Small batches are checked all fields at once, large ones field by field: same verdicts."""
    from dcops.validate import check_batch

    def tiled(reps):
        b = batch()
        return Batch("accel", np.tile(b.time_ns, reps), {k: np.tile(v, reps) for k, v in b.tags.items()},
                     {**{k: np.tile(v, reps) for k, v in b.fields.items()}, "not_a_metric": np.full(3 * reps, -1.0)})

    small, large = check_batch(tiled(1)), check_batch(tiled(3000))
    assert [(r.metric, r.row, r.reason) for r in small[1]] == [("accel_power_w", 1, "outside the valid range 0..1e+09 W"),
                                                              ("accel_temp_degc", 1, "not finite")]
    assert [(r.metric, r.row % 3, r.reason) for r in large[1]] == [(m, i, why) for m, i, why in (
        (r.metric, r.row, r.reason) for r in small[1]) for _ in range(3000)]
    for name in small[0].fields:
        np.testing.assert_array_equal(np.tile(small[0].fields[name], 3000), large[0].fields[name])
