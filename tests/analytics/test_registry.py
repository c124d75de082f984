"""A detector joins the fleet through its `DetectorSpec` and one registry line, nothing else:
the fleet scorer runs it, training fits it, the model file saves and checks its state."""

from __future__ import annotations

import numpy as np
import pytest

from dcops.analytics.detectors import OutlierDetector
from dcops.analytics.detectors.spec import DetectorSpec, Fitted
from dcops.analytics.features import ACCEL_MODEL_FEATURES
from dcops.analytics.fleet import DETECTORS, FleetScorer
from dcops.analytics.models import ModelBundle, ModelFileError
from dcops.analytics.training import train_bundle

POWER = ACCEL_MODEL_FEATURES.index("accel_power_w")


class PowerAboveMean(OutlierDetector):
    """Toy: accelerator power above the trained mean, in trained standard deviations."""

    def __init__(self, contamination=0.01):
        self.contamination = contamination

    def _fit(self, X):
        self.mean_ = X.mean(axis=0)
        self.sd_ = X.std(axis=0) + 1e-9

    def _z(self, X):
        return np.maximum((X - self.mean_) / self.sd_, 0.0).max(axis=1)


class _Part:
    def __init__(self, fleet, state):
        self.fleet, self.det = fleet, state

    def set_model(self, state):
        self.det = state

    def score(self, f):
        if self.det is None:
            return []
        X = f.accel[:, [POWER]]
        ok = ~np.isnan(X).any(axis=1)
        z = np.zeros((len(X), 1))
        z[ok, 0] = -self.det.score_samples(X[ok])  # higher is more abnormal
        return self.fleet.emit(f.time_ns, self.fleet.tracker.ids["accel"], "toy_power", z, ("accel_power_w",), X,
                               np.broadcast_to(self.det.mean_, X.shape), 0.1)


class _Trainer:
    def __init__(self, setup):
        self.rows = []

    def observe(self, k, f):
        self.rows.append(f.accel[:, [POWER]])

    def fit(self, previous):
        X = np.concatenate(self.rows)
        X = X[~np.isnan(X).any(axis=1)]
        return Fitted(PowerAboveMean().fit(X), {"toy_power": len(X)})


TOY = DetectorSpec("toy_power", PowerAboveMean, "accelerator power above its trained mean", ("accel_power_w",),
                   _Part, _Trainer, PowerAboveMean)


@pytest.fixture
def toy_registered(monkeypatch):
    monkeypatch.setitem(DETECTORS, "toy_power", TOY)  # the one registry line


def test_a_registered_detector_is_trained_scored_saved_and_loaded(toy_registered, sim_history, tmp_path):
    sim, history = sim_history
    bundle = train_bundle(sim.inventory, history[:60], window=30)
    assert isinstance(bundle.models["toy_power"], PowerAboveMean)
    assert bundle.metadata.rows["toy_power"] > 0
    assert bundle.metadata.features["toy_power"] == ["accel_power_w"]

    loaded = ModelBundle.load(bundle.save(tmp_path / "m.joblib"))
    assert loaded.models["toy_power"].mean_ == pytest.approx(bundle.models["toy_power"].mean_)

    scorer = FleetScorer(sim.inventory, loaded)
    found = [f for b in history[60:70] for f in scorer.score(b) if f.detector == "toy_power"]
    assert found and all(f.contributions[0].feature == "accel_power_w" for f in found)

    untrained = FleetScorer(sim.inventory, None)
    assert not [f for b in history[60:70] for f in untrained.score(b) if f.detector == "toy_power"]
    untrained.set_models(loaded)  # a retrained bundle reaches the new detector too
    assert [f for f in untrained.score(history[70]) if f.detector == "toy_power"]


def test_a_state_of_the_wrong_type_is_refused_naming_the_detector(toy_registered, trained, tmp_path):
    bad = ModelBundle(trained.metadata, {**trained.models, "toy_power": {"mean": 1.0}})
    with pytest.raises(ModelFileError, match="toy_power"):
        ModelBundle.load(bad.save(tmp_path / "bad.joblib"))


def test_a_state_of_an_unregistered_detector_is_dropped_on_load(trained, tmp_path):
    extra = ModelBundle(trained.metadata, {**trained.models, "retired": PowerAboveMean()})
    loaded = ModelBundle.load(extra.save(tmp_path / "m.joblib"))
    assert "retired" not in loaded.models and set(loaded.models) == set(trained.models)
