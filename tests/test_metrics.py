"""Each process's own /metrics and /healthz: instruments by name, health checks, the HTTP server
scraped over loopback with httpx and parsed with prometheus-client's parser, and a real `dcops role`
process serving both."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from dcops.batch import Batch, Event, Severity
from dcops.bus import InProcessBus, publish_batch, publish_events
from dcops.ingest import IngestWorker
from dcops.metrics import INSTRUMENTS, ROLE_INSTRUMENTS, Check, Instrument, Metrics, serve
from dcops.store.duckdb_store import DuckDBStore
from tests.conftest import SMALL_SITE

NS = 1_000_000_000


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} from a /metrics endpoint, via prometheus-client's parser."""
    r = httpx.get(url + "/metrics", timeout=5)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    out = {}
    for fam in text_string_to_metric_families(r.text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def batch(t: int, n: int = 4, missing: int = 1) -> Batch:
    power = np.linspace(100.0, 400.0, n)
    power[:missing] = np.nan  # NaN = missing: not a sample
    return Batch("accel", np.full(n, t, dtype=np.int64),
                 {"rack": np.array(["R1-01"] * n, dtype=object),
                  "accel": np.array([f"s1:{i}" for i in range(n)], dtype=object)},
                 {"accel_power_w": power, "accel_temp_degc": np.full(n, 55.0)})


@pytest.fixture
def served():
    m = Metrics(role="test")
    srv = serve(m, "127.0.0.1", 0)
    assert srv is not None
    yield m, srv
    srv.close()


def test_instrument_table_follows_the_naming_rule():
    for name, spec in INSTRUMENTS.items():
        assert spec.name == name and spec.metric.startswith("dcops_")
        assert spec.metric.endswith("_total") == (spec.kind == "counter"), spec
    with pytest.raises(ValueError, match="end in _total"):
        Instrument("x", "dcops_x", "counter", "no suffix")
    with pytest.raises(ValueError, match="only counters"):
        Instrument("x", "dcops_x_total", "gauge", "wrong suffix")
    for needed in ("samples_in", "samples_out", "consumer_lag", "poll_errors", "outbox_depth", "scoring_seconds",
                   "spool_depth"):
        assert needed in INSTRUMENTS


def test_deploy_guide_documents_every_shared_instrument():
    from tests.conftest import REPO

    guide = (REPO / "docs" / "deploy.md").read_text()
    for spec in INSTRUMENTS.values():
        assert f"`{spec.metric}`" in guide or f"`{spec.metric}`," in guide, f"{spec.metric} is not in docs/deploy.md"


def test_stage_declares_its_own_instrument_and_unknown_names_are_refused():
    m = Metrics()
    spec = Instrument("rules_evaluated", "dcops_alert_rules_evaluated_total", "counter", "Rules evaluated", ("pack",))
    m.declare(spec)
    m.declare(spec)  # identical: fine
    m.get("rules_evaluated").labels(pack="power").inc(3)
    assert m.value("rules_evaluated", pack="power") == 3
    with pytest.raises(ValueError, match="already declared differently"):
        m.declare(Instrument("rules_evaluated", "dcops_other_total", "counter", "x"))
    with pytest.raises(KeyError, match="no instrument 'nope'.*samples_in"):
        m.get("nope")
    # registries are per Metrics: another process-like instance sees nothing of the first
    assert Metrics().value("rules_evaluated", pack="power") is None


def test_served_metrics_and_observed_sources(served):
    m, srv = served
    m.get("poll_errors").labels(collector="snmp").inc()
    m.get("poll_errors").labels(collector="snmp").inc()
    depth = {"n": 7}
    m.get("outbox_depth").labels(outbox="webhooks").set_function(lambda: depth["n"])
    with m.get("scoring_seconds").labels(detector="thermal").time():
        time.sleep(0.01)
    stats = {"sent": 5, "acked": 4}
    stop = m.observe("bus_messages", lambda: {("poller", k): v for k, v in stats.items()})
    got = scrape(srv.url)
    assert got[("dcops_poll_errors_total", (("collector", "snmp"),))] == 2
    assert got[("dcops_outbox_depth", (("outbox", "webhooks"),))] == 7
    assert got[("dcops_scoring_seconds_count", (("detector", "thermal"),))] == 1
    assert got[("dcops_scoring_seconds_sum", (("detector", "thermal"),))] >= 0.01
    assert got[("dcops_bus_messages_total", (("client", "poller"), ("outcome", "acked")))] == 4
    depth["n"], stats["acked"] = 0, 5  # read at scrape time
    got = scrape(srv.url)
    assert got[("dcops_outbox_depth", (("outbox", "webhooks"),))] == 0
    assert got[("dcops_bus_messages_total", (("client", "poller"), ("outcome", "acked")))] == 5
    stop()
    assert not any(k[0] == "dcops_bus_messages_total" for k in scrape(srv.url))
    with pytest.raises(ValueError, match="exported through observe"):
        m.get("bus_messages")
    with pytest.raises(ValueError, match="already used directly"):
        m.observe("poll_errors", lambda: {})
    with pytest.raises(KeyError, match="no counter or gauge"):
        m.observe("scoring_seconds", lambda: {})


def test_lag_of_partitions_given_away_is_dropped():
    from dcops.metrics import observe_lag

    class Consumer:
        def __init__(self):
            self.parts = {("samples", 0): 5, ("samples", 1): 7}

        def lag(self):
            return dict(self.parts)

    m, c = Metrics(), Consumer()
    observe_lag(m, "ingest", c)
    assert m.value("consumer_lag", group="ingest", topic="samples", partition="1") == 7
    c.parts = {("samples", 0): 2}  # partition 1 went to another worker after a rebalance
    observe_lag(m, "ingest", c)
    assert m.value("consumer_lag", group="ingest", topic="samples", partition="0") == 2
    assert m.value("consumer_lag", group="ingest", topic="samples", partition="1") is None
    observe_lag(m, "ingest", object())  # a consumer without lag(): nothing happens


def test_healthz_is_200_when_all_checks_pass_and_503_naming_the_failure(served):
    m, srv = served
    r = httpx.get(srv.url + "/healthz")
    assert r.status_code == 200 and r.json()["status"] == "ok" and r.json()["role"] == "test"
    m.health.add("store", lambda: Check(True, "last write 1s ago"))
    state = {"ok": True}
    m.health.add("bus", lambda: state["ok"])

    def broken():
        raise ConnectionError("influxdb:8086 refused")

    assert httpx.get(srv.url + "/healthz").status_code == 200
    state["ok"] = False
    r = httpx.get(srv.url + "/healthz")
    assert r.status_code == 503
    body = r.json()
    assert body["status"] == "failing" and body["checks"]["bus"] == {"ok": False, "detail": ""}
    assert body["checks"]["store"] == {"ok": True, "detail": "last write 1s ago"}
    state["ok"] = True
    m.health.add("db", broken)
    body = httpx.get(srv.url + "/healthz").json()
    assert body["checks"]["db"] == {"ok": False, "detail": "ConnectionError: influxdb:8086 refused"}
    assert httpx.get(srv.url + "/nothing").status_code == 404


def test_port_in_use_is_reported_not_fatal(served, caplog):
    _, srv = served
    assert serve(Metrics(), "127.0.0.1", srv.port) is None
    assert f"cannot listen on 127.0.0.1:{srv.port}" in caplog.text


def test_ingest_counters_move_as_samples_flow(served, tmp_path):
    m, srv = served
    bus = InProcessBus()
    store = DuckDBStore(str(tmp_path / "m.duckdb"))
    worker = IngestWorker(bus, store, metrics=m, max_records=2)
    m.health.add("ingest", worker.health)
    t0 = (time.time_ns() // NS - 600) * NS
    sent = [batch(t0 + i * NS) for i in range(5)]
    for b in sent:
        publish_batch(bus, b, key="R1-01")
    publish_events(bus, [Event(t0, "xid", "nvml", {"accel": "s1:0"}, Severity.MAJOR, "XID 79", {})])
    bus.publish("samples", "R1-01", b"\x00garbage")
    stage = (("stage", "ingest"),)

    assert worker.run_once() == 2  # two of seven messages: the rest is lag
    got = scrape(srv.url)
    per_batch = sent[0].n_values
    assert per_batch == 7  # 4 + 4 values, one NaN
    assert got[("dcops_samples_in_total", stage)] == 2 * per_batch
    assert got[("dcops_samples_out_total", stage)] == 2 * per_batch
    assert got[("dcops_consumer_lag_messages", (("group", "ingest"), ("partition", "0"), ("topic", "samples")))] == 4
    assert got[("dcops_consumer_lag_messages", (("group", "ingest"), ("partition", "0"), ("topic", "events")))] == 1

    worker.drain()
    got = scrape(srv.url)
    assert got[("dcops_samples_in_total", stage)] == sum(b.n_values for b in sent) == 35
    assert got[("dcops_samples_out_total", stage)] == 35
    assert got[("dcops_events_in_total", stage)] == 1
    assert got[("dcops_dead_letters_total", stage)] == 1
    assert got[("dcops_bus_messages_in_total", (("stage", "ingest"), ("topic", "samples")))] == 6
    assert got[("dcops_store_write_seconds_count", stage)] >= 3
    assert all(v == 0 for k, v in got.items() if k[0] == "dcops_consumer_lag_messages")
    assert httpx.get(srv.url + "/healthz").json()["checks"]["ingest"]["ok"] is True
    store.close()


def test_ingest_health_fails_while_the_store_is_down(served):
    from dcops.store import StoreUnavailable

    m, srv = served

    class DownStore:
        def write(self, batches):
            raise StoreUnavailable("influxdb:8086: connection refused")

        def write_events(self, events):
            raise StoreUnavailable("influxdb:8086: connection refused")

    bus = InProcessBus()
    sleeps = []
    worker = IngestWorker(bus, DownStore(), metrics=m, sleep=lambda s: (sleeps.append(s), worker.stop()))
    m.health.add("ingest", worker.health)
    publish_batch(bus, batch(time.time_ns()))
    worker.run()  # one failed write, then stop() from the injected sleep
    r = httpx.get(srv.url + "/healthz")
    assert r.status_code == 503
    assert "store unavailable" in r.json()["checks"]["ingest"]["detail"]
    got = scrape(srv.url)
    assert got[("dcops_store_errors_total", (("stage", "ingest"),))] == 1
    assert got[("dcops_samples_out_total", (("stage", "ingest"),))] == 0


def test_role_process_serves_metrics_and_healthz(tmp_path):
    """`dcops role ingest` (embedded settings) as its own process, port chosen by the OS."""
    site = tmp_path / "site.yaml"
    site.write_text(SMALL_SITE.read_text() + f"\nsettings:\n  store:\n    path: {tmp_path}/r.duckdb\n"
                    "  metrics:\n    host: 127.0.0.1\n    port: 9850\n")
    proc = subprocess.Popen([sys.executable, "-m", "dcops.cli", "role", "ingest", "-c", str(site),
                             "--metrics-port", "0"], stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        line = ""
        deadline = time.monotonic() + 60
        while "metrics at" not in line and time.monotonic() < deadline and proc.poll() is None:
            line = proc.stderr.readline()
        assert "metrics at" in line, f"no metrics line; rc={proc.poll()} {line}{proc.stderr.read() if proc.poll() is not None else ''}"
        url = line.split("metrics at ", 1)[1].split("/metrics", 1)[0]
        deadline = time.monotonic() + 30
        while True:  # the role thread registers its checks once its store is open
            body = httpx.get(url + "/healthz").json()
            if "ingest" in body["checks"] or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert body["role"] == "ingest" and body["status"] == "ok", json.dumps(body)
        assert body["checks"]["role:ingest"] == {"ok": True, "detail": "running"}
        lag = ("dcops_consumer_lag_messages", (("group", "ingest"), ("partition", "0"), ("topic", "samples")))
        deadline = time.monotonic() + 10
        while lag not in (got := scrape(url)) and time.monotonic() < deadline:  # set by the first poll
            time.sleep(0.2)
        assert got[lag] == 0
        assert got[("dcops_samples_in_total", (("stage", "ingest"),))] == 0
    finally:
        proc.terminate()
        rc = proc.wait(30)
    assert rc == 0


def _start_role(name: str, tmp_path, extra: str = ""):
    site = tmp_path / "site.yaml"
    site.write_text(SMALL_SITE.read_text() + f"\nsettings:\n  store:\n    path: {tmp_path}/r.duckdb\n"
                    f"  metrics:\n    host: 127.0.0.1\n    port: 9850\n{extra}")
    proc = subprocess.Popen([sys.executable, "-m", "dcops.cli", "role", name, "-c", str(site), "--metrics-port", "0"],
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    line = ""
    deadline = time.monotonic() + 60
    while "metrics at" not in line and time.monotonic() < deadline and proc.poll() is None:
        line = proc.stderr.readline()
    assert "metrics at" in line, f"no metrics line; rc={proc.poll()} {line}"
    return proc, line.split("metrics at ", 1)[1].split("/metrics", 1)[0]


def _promtool(text: str) -> None:
    """`promtool check metrics` (Debian package `prometheus`, .ci/apt.d/metrics.txt): format and lint."""
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("role", sorted(ROLE_INSTRUMENTS))
def test_first_scrape_is_complete_for_every_role(role):
    m = Metrics(role=role)
    srv = serve(m, "127.0.0.1", 0)
    try:
        text = httpx.get(srv.url + "/metrics", timeout=5).text
    finally:
        srv.close()
    _promtool(text)
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    for name in ("process_resident_memory_bytes", "process_cpu_seconds", "process_open_fds", "python_info",
                 "python_gc_collections"):
        assert name in fams, f"{role}: {name} missing"
    (build,) = fams["dcops_build_info"].samples
    assert build.labels["role"] == role and build.labels["version"] and build.value == 1
    for name, labels in ROLE_INSTRUMENTS[role]:
        spec = INSTRUMENTS[name]
        fam = spec.metric[: -len("_total")] if spec.kind == "counter" else spec.metric
        assert f"# TYPE {spec.metric if spec.kind != 'counter' else fam + '_total'}" in text or f"# TYPE {fam} " in text
        if labels:
            sample = spec.metric if spec.kind != "histogram" else spec.metric + "_count"
            assert m.registry.get_sample_value(sample, dict(labels)) == 0, (role, name, labels)


def test_agent_without_an_accelerator_source_is_unhealthy(tmp_path):
    """This machine has no NVML driver and no rbln-stat: the agent cannot do its job and says so."""
    proc, url = _start_role("agent", tmp_path)
    try:
        deadline = time.monotonic() + 30
        while True:
            r = httpx.get(url + "/healthz", timeout=5)
            if "accelerators" in r.json()["checks"] or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert r.status_code == 503, r.text
        check = r.json()["checks"]["accelerators"]
        assert not check["ok"] and "no accelerator source" in check["detail"] and "nvml" in check["detail"]
        _promtool(httpx.get(url + "/metrics", timeout=5).text)
    finally:
        proc.terminate()
        rc = proc.wait(30)
    assert rc == 0


def test_metrics_server_is_waitress_and_drops_a_half_sent_request(served):
    import socket

    m, srv = served
    r = httpx.get(srv.url + "/metrics", timeout=5)
    assert r.headers.get("server") == "dcops"                        # waitress' ident, not wsgiref
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")               # headers never finished
    assert httpx.get(srv.url + "/healthz", timeout=5).status_code == 200   # others are still served
    s.close()


def test_poller_counts_polls_and_is_unhealthy_when_no_agent_answers(tmp_path):
    """`dcops role poller` against an SNMP port nobody answers on: polls and errors counted, /healthz 503."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    site = tmp_path / "site.yaml"
    text = SMALL_SITE.read_text().replace(
        "- {name: UPS-A, capacity_kw: 200, battery_runtime_s: 600}",
        "- {name: UPS-A, capacity_kw: 200, battery_runtime_s: 600, snmp: {host: 127.0.0.1, port: %d, "
        "interval_s: 1, timeout_s: 0.3, retries: 0}}" % port)
    assert text != SMALL_SITE.read_text()
    site.write_text(text + f"\nsettings:\n  metrics:\n    host: 127.0.0.1\n    port: 9850\n")
    proc = subprocess.Popen([sys.executable, "-m", "dcops.cli", "role", "poller", "-c", str(site), "--metrics-port", "0"],
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        line = ""
        while "metrics at" not in line and proc.poll() is None:
            line = proc.stderr.readline()
        url = line.split("metrics at ", 1)[1].split("/metrics", 1)[0]
        first = scrape(url)
        assert ("dcops_polls_total", (("collector", "snmp"),)) in first          # there before the first poll ends
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            r = httpx.get(url + "/healthz", timeout=5)
            if r.status_code == 503:
                break
            time.sleep(0.3)
        assert r.status_code == 503 and "none of 1 SNMP agents answers" in r.json()["checks"]["snmp"]["detail"], r.text
        got = scrape(url)
        assert got[("dcops_polls_total", (("collector", "snmp"),))] >= 1
        assert got[("dcops_poll_errors_total", (("collector", "snmp"),))] >= 1
    finally:
        proc.terminate()
        rc = proc.wait(30)
    assert rc == 0
