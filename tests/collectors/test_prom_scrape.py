"""Prometheus scrape: recorded dcgm-exporter, NPU exporter and vLLM texts mapped to the catalogue."""

from __future__ import annotations

import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from dcops.collectors.prom_scrape import PromMapper, PromParseError, PromScraper, load_prom_map
from dcops.yamlconf import ConfigError

DATA = Path(__file__).resolve().parents[1] / "data" / "prom"


@pytest.fixture(scope="module")
def pmap():
    return load_prom_map()


def _text(name):
    return (DATA / name).read_text()


def _col(batch, metric):
    return [float(x) for x in batch.fields[metric]]


def test_dcgm_exporter_including_health_counters(pmap):
    batch, events = PromMapper(pmap, "gpu-node-07").map([("dcgm", _text("dcgm-exporter-h100.txt"))], 5)
    assert events == [] and len(batch) == 2
    assert list(batch.tags["uuid"]) == ["GPU-5f2a9c41-8d3e-4b7a-a1c9-0e6d2b7f3a10", "GPU-a81c07d2-3f5b-49e6-8c2d-71b4e9f0c522"]
    assert list(batch.tags["accel"]) == ["0", "1"] and set(batch.tags["device"]) == {"gpu-node-07"}
    assert set(batch.tags["model"]) == {"NVIDIA H100 80GB HBM3"} and set(batch.tags["vendor"]) == {"nvidia"}
    assert _col(batch, "accel_temp_degc") == [61.0, 84.0]
    assert _col(batch, "accel_power_w") == pytest.approx([512.337, 688.02])
    assert _col(batch, "accel_energy_j_total") == pytest.approx([3600112345.678, 3710245001.122])  # mJ -> J
    assert _col(batch, "accel_mem_used_bytes") == [62464 * 2**20, 78890 * 2**20]  # MiB -> bytes
    assert _col(batch, "accel_mem_total_bytes") == [81559 * 2**20] * 2
    assert _col(batch, "accel_ecc_uncorrected_total") == [0.0, 1.0]
    assert _col(batch, "accel_remapped_rows_pending") == [0.0, 1.0]
    assert _col(batch, "accel_nvlink_crc_errors_total") == [0.0, 9.0]  # flit 7 + data 2
    assert _col(batch, "accel_retired_pages_total") == [0.0, 0.0]
    assert _col(batch, "accel_throttle_reasons") == [0.0, 68.0]
    assert _col(batch, "accel_xid_last") == [0.0, 48.0]
    xids = _col(batch, "accel_xid_total")  # GPU 0 has no XID series yet
    assert math.isnan(xids[0]) and xids[1] == 2.0  # XIDs 48 and 63 once each
    assert "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL" not in batch.fields  # unlisted series ignored


def test_xid_counter_increase_becomes_events(pmap):
    m = PromMapper(pmap, "gpu-node-07", source="dcgm")
    m.map([("dcgm", _text("dcgm-exporter-h100.txt"))], 1)  # baseline
    batch, events = m.map([("dcgm", _text("dcgm-exporter-h100-later.txt"))], 2)
    got = sorted((e.attributes["uuid"][:12], e.attributes["xid"]) for e in events)
    assert got == [("GPU-5f2a9c41", 79), ("GPU-a81c07d2", 63)]
    e79 = [e for e in events if e.attributes["xid"] == 79][0]
    assert e79.kind == "xid" and e79.attributes["action"] == "reboot_node" and e79.target["accel"] == "0"
    assert e79.severity == "critical" and e79.source == "dcgm"
    assert _col(batch, "accel_xid_total") == [1.0, 3.0]


def test_mig_instance_series_are_not_device_rows(pmap):
    batch, _ = PromMapper(pmap, "h").map([("dcgm", _text("dcgm-exporter-mig.txt"))], 1)
    assert len(batch) == 1 and _col(batch, "accel_temp_degc") == [58.0]
    assert "accel_mem_used_bytes" not in batch.fields


def test_vllm_tokens_shared_over_the_hosts_gpus(pmap):
    texts = [("dcgm", _text("dcgm-exporter-h100.txt")), ("vllm", _text("vllm-metrics.txt"))]
    batch, _ = PromMapper(pmap, "gpu-node-07").map(texts, 1)
    assert _col(batch, "accel_tokens_total") == [1.2000008e8, 1.2000008e8]
    batch, _ = PromMapper(pmap, "gpu-node-07", serving_accels=[1]).map(texts, 1)
    t = _col(batch, "accel_tokens_total")
    assert math.isnan(t[0]) and t[1] == 2.4000016e8


def test_vllm_request_counters_shared_like_the_tokens(pmap):
    texts = [("dcgm", _text("dcgm-exporter-h100.txt")), ("vllm", _text("vllm-metrics.txt"))]
    batch, _ = PromMapper(pmap, "gpu-node-07").map(texts, 1)
    assert _col(batch, "accel_requests_total") == [65500.0, 65500.0]  # every finished_reason counted
    assert _col(batch, "accel_prompt_tokens_total") == [8.812345e8 / 2, 8.812345e8 / 2]
    assert _col(batch, "accel_requests_running") == [18.5, 18.5]


def test_npu_exporter_card_power_once(pmap):
    batch, _ = PromMapper(pmap, "npu-node-03").map([("rbln", _text("rbln-exporter.txt"))], 1)
    assert list(batch.tags["vendor"]) == ["rebellions", "rebellions"]
    p = _col(batch, "accel_power_w")
    assert p[0] == 412.88 and math.isnan(p[1])
    assert _col(batch, "accel_util_pct") == [71.5, 72.5]


def test_gpus_and_npus_side_by_side(pmap):
    texts = [("dcgm", _text("dcgm-exporter-h100.txt")), ("rbln", _text("rbln-exporter.txt"))]
    batch, _ = PromMapper(pmap, "mixed").map(texts, 1)
    assert list(batch.tags["vendor"]) == ["nvidia", "nvidia", "rebellions", "rebellions"]
    assert not np.isnan(batch.fields["accel_temp_degc"]).any()


def test_malformed_exposition_names_the_endpoint(pmap):
    with pytest.raises(PromParseError, match="http://h:9400/metrics: not Prometheus text"):
        PromMapper(pmap, "h").map([("http://h:9400/metrics", 'DCGM_FI_DEV_GPU_TEMP{gpu="0" 61\n')], 1)


def test_series_without_accelerator_labels_is_reported(pmap):
    m = PromMapper(pmap, "h")
    batch, _ = m.map([("x", 'DCGM_FI_DEV_GPU_TEMP{Hostname="h"} 61\n')], 1)
    assert batch is None and "lacks accelerator labels 'UUID'/'gpu'" in m.problems[0]


def test_bad_map_file_names_line_and_field(tmp_path):
    (tmp_path / "m.yaml").write_text("sources:\n  d:\n    vendor: nvidia\n    labels: {uuid: UUID, index: gpu}\n"
                                     "    series:\n      X: {metric: accel_temp_c}\n")
    with pytest.raises(ConfigError, match=r"m.yaml:6: sources.d.series.X.metric: metric 'accel_temp_c' is not"):
        load_prom_map(tmp_path / "m.yaml")


class _Handler(BaseHTTPRequestHandler):
    body = b""

    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *a):
        pass


def test_http_scrape_and_unreachable_target(pmap):
    _Handler.body = _text("dcgm-exporter-h100.txt").encode()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    url = f"http://127.0.0.1:{srv.server_address[1]}/metrics"
    try:
        scraper = PromScraper([url], PromMapper(pmap, "gpu-node-07"), clock=lambda: 3)
        batch, events = scraper.poll()
        assert len(batch) == 2 and events == []
    finally:
        srv.shutdown()
        srv.server_close()
    batch, events = scraper.poll()
    assert batch is None and [e.kind for e in events] == ["agent_unreachable"] and url in events[0].message
    _, events = scraper.poll()
    assert events == []  # once, not every poll



def test_scrape_role_polls_servers_exporters():
    from dcops.collectors.prom_scrape import run_role, site_targets
    from dcops.bus import InProcessBus
    from dcops.codec import decode
    from dcops.site import site_from_text

    cfg = site_from_text("""
site: s
settings: {interval_s: 0.05}
halls:
  - name: H
    upses: [{name: U, capacity_kw: 100}]
    pdus: [{name: P, ups: U, capacity_kw: 50}]
    rows:
      - name: R
        racks:
          - name: K1
            feeds: {A: P, B: P}
            servers:
              - {name: g1, agent: "10.0.0.7:9400", accelerators: {vendor: nvidia, model: H100-SXM5-80GB, count: 2}}
              - {name: g2, agent: "http://10.0.0.8:9400/metrics", accelerators: {vendor: nvidia, model: H100-SXM5-80GB, count: 2}}
              - {name: c1, kind: cpu_server}
""")
    assert site_targets(cfg) == {"g1": "http://10.0.0.7:9400/metrics", "g2": "http://10.0.0.8:9400/metrics"}
    body = _text("dcgm-exporter-h100.txt")

    def fetch(url):
        if "10.0.0.8" in url:
            raise ConnectionError(f"scrape of {url} failed: connection refused")
        return body

    bus = InProcessBus()
    samples, events = bus.consumer("samples", "t"), bus.consumer("events", "t")
    stop = threading.Event()
    th = threading.Thread(target=run_role, args=(cfg, stop), kwargs={"bus": bus, "fetch": fetch})
    th.start()
    got = []
    for _ in range(200):
        got += samples.poll(0.02, 10)
        if got:
            break
    stop.set()
    th.join(5)
    batch = decode(got[0].value)
    assert got[0].key == "K1" and set(batch.tags["device"]) == {"g1"} and set(batch.tags["site"]) == {"s"}
    evs = [e for m in events.poll(0.1, 100) for e in decode(m.value)]
    assert [(e.kind, e.target["device"]) for e in evs] == [("agent_unreachable", "g2")]


def _as_window_gauge(text: str) -> str:
    """The same scrape from an older dcgm-exporter: XIDs only as the windowed gauge
    DCGM_EXP_XID_ERRORS_COUNT (its default-counters.csv names it a gauge with an `xid` label)."""
    return (text.replace("# TYPE DCGM_EXP_XID_ERRORS_TOTAL counter", "# TYPE DCGM_EXP_XID_ERRORS_COUNT gauge")
                .replace("# HELP DCGM_EXP_XID_ERRORS_TOTAL Total XID errors observed since exporter start.",
                         "# HELP DCGM_EXP_XID_ERRORS_COUNT Count of XID Errors within user-specified time window.")
                .replace("DCGM_EXP_XID_ERRORS_TOTAL{", "DCGM_EXP_XID_ERRORS_COUNT{"))


def test_xid_window_gauge_of_older_exporters_becomes_events_not_a_counter(pmap):
    m = PromMapper(pmap, "gpu-node-07", source="dcgm")
    first = _as_window_gauge(_text("dcgm-exporter-h100.txt"))
    later = _as_window_gauge(_text("dcgm-exporter-h100-later.txt"))
    assert "DCGM_EXP_XID_ERRORS_TOTAL" not in later and "DCGM_EXP_XID_ERRORS_COUNT{" in later
    m.map([("dcgm", first)], 1)
    batch, events = m.map([("dcgm", later)], 2)
    assert sorted((e.attributes["uuid"][:12], e.attributes["xid"]) for e in events) == [
        ("GPU-5f2a9c41", 79), ("GPU-a81c07d2", 63)]
    assert "accel_xid_total" not in batch.fields  # a windowed count is not a lifetime counter
    _, again = m.map([("dcgm", first)], 3)  # the window moved on: counts fell, nothing new
    assert again == []
