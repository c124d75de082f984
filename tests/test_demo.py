"""The demo runtime end to end (console off): simulator -> bus -> ingest -> DuckDB, injections."""

from __future__ import annotations

import time

import httpx

from dcops.demo import Demo, DemoOptions
from dcops.demo_control import read_control
from dcops.store.duckdb_store import DuckDBStore


def test_demo_collects_stores_and_takes_injections(small_site, tmp_path):
    lines = []
    demo = Demo(small_site, DemoOptions(history=False, data_dir=tmp_path, interval_s=1.0, speed=20.0, console=False,
                                        faults=((0.1, "pdu_breaker_trip", "PDU-A1"),)), say=lines.append)
    demo.start()
    try:
        ctl = read_control(tmp_path)
        hdr = {"X-DCOPS-Token": ctl["token"]}
        r = httpx.post(ctl["url"] + "/inject", headers=hdr, json={"fault": "crac_failure", "target": "CRAC-3"})
        assert r.status_code == 200 and r.json()["fault_type"] == "crac_failure"
        bad = httpx.post(ctl["url"] + "/inject", headers=hdr, json={"fault": "crac_failure", "target": "UPS-A"})
        assert bad.status_code == 400 and "targets" in bad.json()["error"]
        assert httpx.post(ctl["url"] + "/inject", json={"fault": "x", "target": "y"}).status_code == 403
        assert httpx.post(ctl["url"] + "/inject", headers=hdr, content=b"[1]").status_code == 400
        deadline = time.time() + 20
        while time.time() < deadline and (demo.stats.steps < 20 or len(demo.sim.labels) < 2):
            time.sleep(0.1)
    finally:
        demo.stop()
    assert {lab.fault_type for lab in demo.sim.labels} == {"pdu_breaker_trip", "crac_failure"}
    assert any("site 'test'" in s and "44 accelerators" in s for s in lines)
    assert not (tmp_path / "control.json").exists()
    store = DuckDBStore(tmp_path / "telemetry.duckdb")
    try:
        steps = demo.stats.steps
        per_rack = lambda rack: len(store.query_range("accel", ["accel_power_w"], 0, 2**62, where={"rack": rack}))  # noqa: E731
        assert per_rack("R1-01") == 8 * steps and per_rack("R2-03") == 8 * steps
        assert per_rack("R1-03") < 4 * steps  # its only feed tripped: a dark host reports nothing
        assert store.count("rack") == 6 * demo.stats.steps
        kinds = {e.kind for e in store.events(0, 2**62)}
        assert {"breaker_trip", "accel_lost", "cooling_fault"} <= kinds
        assert "fault_injected" not in kinds  # ground truth never reaches the pipeline
        rack = store.latest("rack", ["rack_feed_a_power_w"], where={"rack": "R1-01"})
        assert rack.fields["rack_feed_a_power_w"][0] == 0.0
    finally:
        store.close()


def test_fleet_table_has_inference_throughput_for_every_model(small_site, tmp_path):
    """Tokens reach the console through the agents: each host's stand-in vLLM server, read by
    its agent's serving reader, shared over the host's accelerators."""
    from dcops.console import data_series
    from dcops.console.data import Context

    demo = Demo(small_site, DemoOptions(history=False, data_dir=tmp_path, interval_s=1.0, speed=20.0, console=False,
                                        faults=()), say=lambda _: None)
    demo.start()
    try:
        deadline = time.time() + 30
        while True:  # until two polls of every host are ingested (a rate needs two samples)
            table = data_series.fleet_table(Context(demo.store, demo.sim.inventory))
            if time.time() > deadline or (table["tokens_per_s"] > 0).all():
                break
            time.sleep(0.5)
    finally:
        demo.stop()
    assert len(table) >= 2 and set(table["vendor"]) == {"nvidia", "rebellions"}
    assert (table["tokens_per_s"] > 0).all() and (table["requests_per_s"] > 0).all(), table
    assert (table["j_per_token"] > 0).all(), table
