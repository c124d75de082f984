"""The current-state view over InfluxDB (influxd 1.6 behind the v2 write route): rebuilt after a
restart from the store's most recent window, with range reads only, as over DuckDB."""

from __future__ import annotations

import time

import numpy as np
import pytest

from dcops.batch import Batch
from dcops.store.current import CurrentState, current_view
from tests.integration.datapath_fixtures import influx_with_route

pytestmark = pytest.mark.slow
NS = 1_000_000_000


@pytest.fixture(scope="module")
def influx():
    with influx_with_route(pytest.skip) as pair:
        yield pair


@pytest.fixture
def store(influx, request):
    from dcops.store.influx_store import InfluxStore

    st = InfluxStore(influx[1].url, f"c_{request.node.name[:40]}", timeout_s=5, max_retries=1, write_timeout_s=15)
    yield st
    st.close()


def _poll(t_ns: int, temp: float, racks=("R1-01", "R1-02"), per_rack=4) -> Batch:
    rack = np.repeat(np.asarray(racks, dtype=object), per_rack)
    accel = np.asarray([f"{r}-S01:{i}" for r in racks for i in range(per_rack)], dtype=object)
    return Batch("accel", np.full(len(rack), t_ns), {"rack": rack, "accel": accel},
                 {"accel_temp_degc": np.full(len(rack), temp), "accel_tokens_total": np.full(len(rack), temp * 100)})


class NoLatest:
    """The store as the view may use it: ranges only."""

    def __init__(self, store) -> None:
        self._s = store
        self.url, self.database, self.rp = store.url, store.database, store.rp
        self.measurements = store.measurements

    def query_range(self, *a, **kw):
        return self._s.query_range(*a, **kw)


def test_rebuild_after_restart_from_the_most_recent_window(store):
    t0 = (time.time_ns() // NS - 3600) * NS
    for k in range(30):  # five minutes at 10 s, an hour ago
        store.write([_poll(t0 + k * 10 * NS, 40.0 + k)])
    view = CurrentState()
    rows = view.rebuild(NoLatest(store), now_ns=t0 + 300 * NS, window_s=60)
    assert rows == 6 * 8  # the last minute only, not the whole history
    got = view.read("accel", ["accel_temp_degc"], where={"rack": "R1-02"})
    assert len(got) == 4 and (got.fields["accel_temp_degc"] == 69.0).all()
    assert (got.time_ns == t0 + 290 * NS).all()
    rate = view.rate("accel", "accel_tokens_total")
    assert np.allclose(rate.fields["accel_tokens_total"], 10.0)  # 100 per 10 s

    later = CurrentState()  # a clock far from the data: the newest window is found by count windows
    assert 6 * 8 <= later.rebuild(NoLatest(store), now_ns=t0 + 30 * 86400 * NS, window_s=60) <= 13 * 8
    assert later.newest_ns("accel") == t0 + 290 * NS
    assert (later.read("accel", ["accel_temp_degc"]).fields["accel_temp_degc"] == 69.0).all()


def test_views_are_shared_per_server_and_database(store, influx):
    from dcops.store.influx_store import InfluxStore

    other = InfluxStore(influx[1].url, store.database, timeout_s=5, manage_schema=False)
    try:
        assert current_view(other) is current_view(store)
    finally:
        other.close()
