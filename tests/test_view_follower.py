"""A process that does not ingest keeps its current-state view from the bus (dcops.ingest.ViewFollower)."""

from __future__ import annotations

import numpy as np

from dcops.batch import Batch
from dcops.bus import TOPIC_SAMPLES, InProcessBus, publish_by_rack
from dcops.ingest import ViewFollower, follow_view
from dcops.store.current import CurrentState

NS = 1_000_000_000
T0 = 1_800_000_000 * NS


def poll(t_s: float, temp: float) -> Batch:
    racks = np.asarray(["R1", "R1", "R2", "R2"], dtype=object)
    return Batch("accel", np.full(4, T0 + int(t_s * NS)),
                 {"rack": racks, "device": racks + "-S1", "accel": np.asarray(["0", "1", "0", "1"], dtype=object)},
                 {"accel_temp_degc": np.full(4, temp)})


def test_follower_sees_every_rack_and_skips_what_ingest_would_dead_letter():
    bus = InProcessBus()
    view = CurrentState()
    follower = ViewFollower(bus.consumer(TOPIC_SAMPLES, "view.console.test"), view)
    publish_by_rack(bus, poll(0, 50.0))
    bus.publish(TOPIC_SAMPLES, "R9", b"not a frame")
    publish_by_rack(bus, poll(10, 60.0))
    while follower.run_once(timeout_s=0):
        pass
    got = view.read("accel", ["accel_temp_degc"])
    assert sorted(set(got.tags["rack"])) == ["R1", "R2"] and (got.fields["accel_temp_degc"] == 60.0).all()
    assert view.fed() and follower.batches == 4


def test_no_follower_on_the_in_process_bus(tmp_path):
    from dcops.settings import Settings

    settings = Settings.model_validate({"store": {"kind": "duckdb", "path": str(tmp_path / "t.duckdb")}})
    assert follow_view(settings, object(), "console") is None  # the ingest thread feeds the view
