"""The analytics service end to end on the in-process bus: score, train from the store, swap."""

from __future__ import annotations

import copy
import threading
import time

from dcops.analytics.service import Analytics
from dcops.bus import TOPIC_FINDINGS, InProcessBus, publish_batch
from dcops.findings import decode_findings
from dcops.store.duckdb_store import DuckDBStore


def test_service_scores_trains_itself_and_reports_faults(sim_history, tmp_path):
    sim, history = sim_history
    sim = copy.deepcopy(sim)
    bus = InProcessBus(max_messages=100_000)
    store = DuckDBStore(tmp_path / "s.duckdb")
    now = {"t": 0}
    analytics = Analytics(bus, store, sim.inventory, model_path=tmp_path / "m.joblib", interval_s=sim.interval_s,
                          first_training_s=600.0, clock=lambda: now["t"])
    analytics.scorer.lateness_s = 0.05
    findings_in = bus.consumer(TOPIC_FINDINGS, "alerts")
    stop = threading.Event()
    thread = threading.Thread(target=analytics.run, args=(stop,), daemon=True)
    thread.start()
    try:
        for batches in history:
            store.write(batches)
            for b in batches:
                publish_batch(bus, b, key=b.measurement)
            now["t"] = int(batches[0].time_ns[0]) + 1
        deadline = time.monotonic() + 30
        while analytics.retrain.current is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert analytics.retrain.current is not None, "first training did not happen"
        assert (tmp_path / "m.joblib").exists()
        gpu = sim.inventory.accel_ids[2]
        sim.inject("hbm_thermal_throttle", gpu, 600)
        for _ in range(3):
            sim.step()
            for b in sim.batches():
                publish_batch(bus, b, key=b.measurement)
            time.sleep(0.2)
        deadline = time.monotonic() + 10
        seen = []
        while time.monotonic() < deadline and not any(f.component == gpu for f in seen):
            seen += [f for m in findings_in.poll(0.2, 1000) for f in decode_findings(m.value)]
        assert any(f.component == gpu for f in seen)
    finally:
        stop.set()
        thread.join(timeout=10)
        store.close()
    assert not thread.is_alive()
