"""Training from the store, model files with metadata, drift, and scheduled retraining."""

from __future__ import annotations

import time

import numpy as np
import pytest

from dcops.analytics.models import ModelBundle, ModelFileError
from dcops.analytics.training import RetrainScheduler, TrainingError, train_bundle, train_from_store
from dcops.store.duckdb_store import DuckDBStore


@pytest.fixture(scope="module")
def store(sim_history, tmp_path_factory):
    sim, history = sim_history
    st = DuckDBStore(tmp_path_factory.mktemp("store") / "t.duckdb")
    for batches in history:
        st.write([b for b in batches if b.measurement in ("accel", "server")])
    yield st
    st.close()


def test_model_file_roundtrip_with_metadata(trained, tmp_path):
    path = trained.save(tmp_path / "m.joblib")
    meta = (tmp_path / "m.joblib.json").read_text()
    assert '"model_version": 1' in meta and "accel_temp_degc" in meta
    loaded = ModelBundle.load(path)
    assert loaded.metadata == trained.metadata
    assert set(loaded.models["isolation_forest"]) == {"H100-SXM5-80GB", "L40S", "RBLN-CA22"}
    X = np.array([[300.0, 25.0, 45.0]])
    model = "H100-SXM5-80GB"
    assert loaded.models["thermal_residual"][model].expected(X) == pytest.approx(trained.models["thermal_residual"][model].expected(X))
    assert trained.metadata.window_end_ns > trained.metadata.window_start_ns
    assert trained.metadata.intervals == 150


def test_bad_model_files_are_named(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        ModelBundle.load(tmp_path / "none.joblib")
    bad = tmp_path / "bad.joblib"
    bad.write_bytes(b"not a pickle")
    with pytest.raises(ModelFileError, match="bad.joblib"):
        ModelBundle.load(bad)


def test_train_from_store_matches_replay_and_records_drift(store, sim_history, trained):
    sim, history = sim_history
    end = int(history[-1][0].time_ns[0]) + 1
    bundle = train_from_store(store, sim.inventory, history_s=3600, now_ns=end, previous=trained)
    assert bundle.metadata.model_version == 2
    assert bundle.metadata.intervals == len(history)
    model = "H100-SXM5-80GB"
    assert abs(bundle.models["thermal_residual"][model].coef_[0] - trained.models["thermal_residual"][model].coef_[0]) < 0.005
    assert bundle.metadata.drift[f"thermal:{model}"] < 1.0  # same fleet, same baseline


def test_drift_is_measured_when_the_fleet_runs_hotter(sim_history, trained):
    sim, history = sim_history
    hot = []
    for batches in history:
        out = []
        for b in batches:
            if b.measurement == "accel":
                b = b.with_fields(accel_temp_degc=b.fields["accel_temp_degc"] + 6.0)
            out.append(b)
        hot.append(out)
    bundle = train_bundle(sim.inventory, hot, previous=trained)
    assert bundle.metadata.drift["thermal:H100-SXM5-80GB"] > 5


def test_too_little_history_is_a_clear_error(sim_history):
    sim, history = sim_history
    with pytest.raises(TrainingError, match="at least"):
        train_bundle(sim.inventory, history[:10])


def test_scheduled_retraining_saves_and_hands_over_models(store, sim_history, tmp_path):
    sim, history = sim_history
    end = int(history[-1][0].time_ns[0]) + 1
    got = []
    sched = RetrainScheduler(store, sim.inventory, tmp_path / "m.joblib", got.append, every_s=0.2,
                             history_s=3600, clock=lambda: end)
    sched.start()
    try:
        deadline = time.monotonic() + 20
        while not got and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        sched.stop()
    assert got and (tmp_path / "m.joblib").exists()
    assert ModelBundle.load(tmp_path / "m.joblib").metadata.model_version >= 1


def test_failed_retraining_keeps_the_previous_model(sim_history, trained, tmp_path):
    sim, _ = sim_history

    class DownStore:
        def query_range(self, *a, **k):
            raise ConnectionError("store down")

    got = []
    sched = RetrainScheduler(DownStore(), sim.inventory, tmp_path / "m.joblib", got.append, current=trained)
    assert sched.retrain_once() is None
    assert sched.failures == 1 and sched.current is trained and not got
