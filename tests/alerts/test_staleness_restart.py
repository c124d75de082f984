"""Staleness checks across a restart: the absence rule learns when each component last reported
from the current-state view, read back from the store with range reads (dcops.store.current)."""

from __future__ import annotations

import numpy as np

from dcops.batch import Batch
from dcops.store.current import CurrentState, staleness_view
from dcops.store.duckdb_store import DuckDBStore
from tests.alerts.test_rules import _apply, _engine

NS = 1_000_000_000
T0 = 1_800_000_000 * NS
GONE = ("  - {name: gone, type: absence, metric: cooling_running, for_s: 60,"
        " event_type: communicationsAlarm, probable_cause: lossOfSignal}\n")


def cooling(t_s: float, units=("CRAC-1", "CRAC-2")) -> Batch:
    return Batch("cooling", np.full(len(units), T0 + int(t_s * NS)),
                 {"device": list(units), "index": [""] * len(units)}, {"cooling_running": np.ones(len(units))})


def test_a_unit_silent_before_the_restart_is_found_absent_after_it():
    view = CurrentState()
    view.update([cooling(0), cooling(50, units=("CRAC-2",))])  # CRAC-1 stops reporting after t=0
    fresh, _ = _engine(GONE)  # restarted, nothing learnt: the silent unit would never be reported
    assert fresh.on_tick(T0 + 61 * NS) == []
    eng, active = _engine(GONE)
    eng.seed(view)
    (s,) = _apply(active, eng.on_tick(T0 + 61 * NS))
    assert s.active and s.component == "CRAC-1"
    assert eng.on_tick(T0 + 100 * NS) == []  # CRAC-2 (last seen at 50) is not yet 60 s silent
    assert eng.absence_measurements() == {"cooling": 60.0}


def test_staleness_view_reads_back_twice_the_wait_from_the_store(tmp_path):
    path = tmp_path / "t.duckdb"
    store = DuckDBStore(path)
    store.write([cooling(0)])
    store.write([cooling(k, units=("CRAC-2",)) for k in range(10, 500, 10)])
    store.close()
    view = staleness_view(lambda: DuckDBStore(path), {"cooling": 60.0}, T0 + 500 * NS)
    got = view.read("cooling", ["cooling_running"], max_age_s=86400)
    assert list(got.tags["device"]) == ["CRAC-2"]  # CRAC-1's last report is older than 2 x 60 s
    assert view.newest_ns("cooling") == T0 + 490 * NS
    assert staleness_view(lambda: DuckDBStore(path), {}, T0) is None  # nothing to watch

    def unreachable():
        raise OSError("no route to host")

    assert staleness_view(unreachable, {"cooling": 60.0}, T0) is None  # alert anyway, as before
