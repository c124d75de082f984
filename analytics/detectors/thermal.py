"""Thermal residual model: expected temperature from power, load and cooling state.

`X` holds the inputs followed by the observed temperature (column `target_index`, default the
last). `fit` learns a linear model (least squares with an intercept, then refitted without the
worst `trim` share of rows, so a few hot rows in the history do not bend it) and the spread of
its residuals. The abnormality is the residual in spreads, positive side only by default: a
device running hotter than its power, load and inlet explain is what cooling degradation
(a failed fan, a clogged filter, a dried heatsink) looks like before any threshold trips. The
streaming scorer smooths it over a few intervals so only persistent residuals raise findings.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from dcops.analytics.detectors.base import OutlierDetector
from dcops.analytics.detectors.spec import (
    DetectorSpec, Fitted, TrainedPart, TrainingSetup, rows_by_model, sample_rows,
)
from dcops.analytics.tracker import INLET_INPUTS, THERMAL_INPUTS

if TYPE_CHECKING:
    from dcops.analytics.fleet import FleetScorer
    from dcops.analytics.tracker import IntervalFeatures
    from dcops.findings import Finding

__all__ = ["ThermalResidualModel", "InletModels", "THERMAL_RESIDUAL", "INLET_RESIDUAL"]

INLET_MIN_SCALE = 0.25  # degC: rack inlet probes are good to a few tenths


class ThermalResidualModel(OutlierDetector):
    def __init__(self, target_index=-1, min_scale=0.6, two_sided=False, trim=0.05, contamination=0.01):
        self.target_index = target_index
        self.min_scale = min_scale
        self.two_sided = two_sided
        self.trim = trim
        self.contamination = contamination

    def _split(self, X):
        t = self.target_index % X.shape[1]
        return np.delete(X, t, axis=1), X[:, t]

    def _design(self, inputs):
        return np.column_stack([np.ones(len(inputs)), inputs])

    def _fit(self, X):
        if X.shape[1] < 2:
            raise ValueError(f"ThermalResidualModel needs input columns and a target column; got {X.shape[1]} feature(s)")
        inputs, y = self._split(X)
        A = self._design(inputs)
        coef = np.linalg.lstsq(A, y, rcond=None)[0]
        if self.trim > 0 and len(y) > 20:
            r = np.abs(y - A @ coef)
            keep = r <= np.quantile(r, 1.0 - self.trim)
            coef = np.linalg.lstsq(A[keep], y[keep], rcond=None)[0]
        self.intercept_, self.coef_ = float(coef[0]), coef[1:].copy()
        res = y - A @ coef
        self.residual_scale_ = max(float(np.median(np.abs(res - np.median(res)))) * 1.4826, self.min_scale)

    def expected(self, X) -> np.ndarray:
        """Expected target for each row of X (inputs and target, as in fit)."""
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self)
        inputs, _ = self._split(np.asarray(X, dtype=np.float64))
        return self.intercept_ + inputs @ self.coef_

    def residual_z(self, X) -> np.ndarray:
        """Signed residual (observed - expected) in residual spreads."""
        X = np.asarray(X, dtype=np.float64)
        _, y = self._split(X)
        return (y - self.expected(X)) / self.residual_scale_

    def _z(self, X):
        r = self.residual_z(X)
        return np.abs(r) if self.two_sided else np.maximum(r, 0.0)


# ----- in the fleet ---------------------------------------------------------------------------
class _ThermalPart(TrainedPart):
    """Die temperature against what power and inlet explain, one model per accelerator model,
    smoothed so only persistent excess counts."""

    def __init__(self, fleet: FleetScorer, state: dict[str, ThermalResidualModel] | None) -> None:
        super().__init__(fleet, state)
        self.by_model = rows_by_model(fleet.inventory)
        self.z = np.zeros(len(fleet.inventory.accel_ids))

    def score_trained(self, f: IntervalFeatures, state: dict[str, ThermalResidualModel]) -> list[Finding]:
        fleet = self.fleet
        ids = fleet.tracker.ids["accel"]
        z, expected = np.zeros(len(ids)), np.full(len(ids), np.nan)
        for model, rows in self.by_model:
            tm = state.get(model)
            if tm is not None:
                T = f.thermal[rows]
                ok = ~np.isnan(T).any(axis=1)
                if ok.any():
                    z[rows[ok]] = np.maximum(tm.residual_z(T[ok]), 0.0)
                    expected[rows[ok]] = tm.expected(T[ok])
        a = fleet.params.thermal_smoothing
        self.z = (1 - a) * self.z + a * z
        return fleet.emit(f.time_ns, ids, "thermal_residual", self.z[:, None], ("accel_temp_degc",), f.thermal[:, -1:],
                          expected[:, None], fleet.params.thermal_z)


class _ThermalTrainer:
    def __init__(self, setup: TrainingSetup) -> None:
        self.by_model, self.rng = rows_by_model(setup.inventory), setup.rng()
        self.thermal: list[np.ndarray] = []

    def observe(self, k: int, f: IntervalFeatures) -> None:
        self.thermal.append(f.thermal)

    def fit(self, previous: dict[str, ThermalResidualModel] | None) -> Fitted:
        thermal = np.stack(self.thermal)  # (time, accel, cols)
        models, rows, drift = {}, {}, {}
        for model, sel in self.by_model:
            T = thermal[:, sel].reshape(-1, thermal.shape[-1])
            T = sample_rows(self.rng, T[~np.isnan(T).any(axis=1)])
            if len(T) >= 50:
                models[model] = ThermalResidualModel().fit(T)
                rows[f"thermal:{model}"] = len(T)
            old = (previous or {}).get(model)
            if old is not None and model in models:
                probe = np.array([[300.0, 25.0, 0.0]])  # a typical operating point
                shift = abs(models[model].expected(probe)[0] - old.expected(probe)[0]) / old.residual_scale_
                drift[f"thermal:{model}"] = round(float(shift), 3)
        return Fitted(models, rows, drift)


THERMAL_RESIDUAL = DetectorSpec(
    "thermal_residual", ThermalResidualModel, "die temperature against what power and server inlet explain",
    THERMAL_INPUTS + ("accel_temp_degc",), _ThermalPart, _ThermalTrainer, dict)


@dataclass
class InletModels:
    zones: dict[str, ThermalResidualModel]  # cooling zone -> rack inlet model
    offsets: dict[str, float]  # rack -> its usual inlet (training median)


class _InletPart(TrainedPart):
    """Rack inlets hotter than their rack's usual plus what the zone's heat explains (reported
    as `thermal_residual`, smoothed like the dies)."""

    def __init__(self, fleet: FleetScorer, state: InletModels | None) -> None:
        super().__init__(fleet, state)
        self.z = np.zeros(len(fleet.tracker.rack_index))

    def score_trained(self, f: IntervalFeatures, state: InletModels) -> list[Finding]:
        fleet, tracker = self.fleet, self.fleet.tracker
        racks = tracker.rack_index
        offset = np.array([state.offsets.get(r, np.nan) for r in racks])
        z, expected = np.zeros(len(racks)), np.full(len(racks), np.nan)
        for zone, model in state.zones.items():
            if zone not in tracker.zone_names:
                continue  # a zone that no longer exists in the site
            code = tracker.zone_names.index(zone)
            rows = np.flatnonzero((tracker.rack_zone == code) & np.isfinite(offset))
            X = f.rack_thermal[rows].copy()
            X[:, -1] -= offset[rows]
            ok = ~np.isnan(X).any(axis=1)
            if ok.any():
                z[rows[ok]] = np.maximum(model.residual_z(X[ok]), 0.0)
                expected[rows[ok]] = model.expected(X[ok]) + offset[rows[ok]]
        a = fleet.params.thermal_smoothing
        self.z = (1 - a) * self.z + a * z
        return fleet.emit(f.time_ns, racks, "thermal_residual", self.z[:, None], ("rack_inlet_temp_degc",),
                          f.rack_thermal[:, -1:], expected[:, None], fleet.params.thermal_z)


class _InletTrainer:
    """Rack inlet temperature per cooling zone: [rack power, zone IT power] -> inlet minus the
    rack's usual inlet (racks at a row's end or beside hot neighbours run warmer by design)."""

    def __init__(self, setup: TrainingSetup) -> None:
        self.tracker = setup.tracker
        self.racks: list[np.ndarray] = []

    def observe(self, k: int, f: IntervalFeatures) -> None:
        self.racks.append(f.rack_thermal)

    def fit(self, previous) -> Fitted:
        R, tracker = np.stack(self.racks), self.tracker
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            usual = np.nanmedian(R[:, :, -1], axis=0)
        offsets = {name: float(u) for name, u in zip(tracker.rack_index, usual) if np.isfinite(u)}
        zones, rows = {}, {}
        for zone in np.unique(tracker.rack_zone):
            sel = tracker.rack_zone == zone
            X = R[:, sel].copy()
            X[:, :, -1] -= usual[sel]
            X = X.reshape(-1, X.shape[-1])
            X = X[~np.isnan(X).any(axis=1)]
            if len(X) >= 50:
                name = tracker.zone_names[zone]
                zones[name] = ThermalResidualModel(min_scale=INLET_MIN_SCALE).fit(X)
                rows[f"inlet:{name}"] = len(X)
        return Fitted(InletModels(zones, offsets), rows)


INLET_RESIDUAL = DetectorSpec(
    "inlet_residual", ThermalResidualModel, "rack inlet temperature against what the rack's and its zone's power explain",
    INLET_INPUTS + ("rack_inlet_temp_degc",), _InletPart, _InletTrainer, InletModels)
