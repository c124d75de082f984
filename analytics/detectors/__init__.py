"""Detectors. Each follows scikit-learn's outlier-detector contract (see `base`); those the fleet
scorer runs also declare how it builds, trains and saves them (`spec.DetectorSpec`, registered in
`dcops.analytics.fleet.DETECTORS`)."""

from dcops.analytics.detectors.base import OutlierDetector, z_to_score
from dcops.analytics.detectors.counters import COUNTER_TREND, CounterTrendDetector
from dcops.analytics.detectors.multivariate import ISOLATION_FOREST, FeatureIsolationForest, ModelForest
from dcops.analytics.detectors.peer import PEER_GROUP, PeerGroupDetector
from dcops.analytics.detectors.thermal import INLET_RESIDUAL, THERMAL_RESIDUAL, InletModels, ThermalResidualModel
from dcops.analytics.detectors.univariate import RobustStreamingDetector, StreamState

__all__ = [
    "COUNTER_TREND", "INLET_RESIDUAL", "ISOLATION_FOREST", "PEER_GROUP", "THERMAL_RESIDUAL",
    "CounterTrendDetector", "FeatureIsolationForest", "InletModels", "ModelForest", "OutlierDetector",
    "PeerGroupDetector", "RobustStreamingDetector", "StreamState", "ThermalResidualModel", "z_to_score",
]
