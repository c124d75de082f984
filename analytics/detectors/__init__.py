"""Detectors. Each follows scikit-learn's outlier-detector contract (see `base`)."""

from dcops.analytics.detectors.base import OutlierDetector, z_to_score
from dcops.analytics.detectors.counters import CounterTrendDetector
from dcops.analytics.detectors.multivariate import FeatureIsolationForest
from dcops.analytics.detectors.peer import PeerGroupDetector
from dcops.analytics.detectors.thermal import ThermalResidualModel
from dcops.analytics.detectors.univariate import RobustStreamingDetector, StreamState

DETECTORS = {
    "univariate": RobustStreamingDetector,
    "isolation_forest": FeatureIsolationForest,
    "thermal_residual": ThermalResidualModel,
    "peer_group": PeerGroupDetector,
    "counter_trend": CounterTrendDetector,
}

__all__ = [
    "DETECTORS", "CounterTrendDetector", "FeatureIsolationForest", "OutlierDetector", "PeerGroupDetector",
    "RobustStreamingDetector", "StreamState", "ThermalResidualModel", "z_to_score",
]
