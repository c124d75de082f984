"""Detectors. Each follows scikit-learn's outlier-detector contract (see `base`)."""

from analytics.detectors.base import OutlierDetector, z_to_score
from analytics.detectors.counters import CounterTrendDetector
from analytics.detectors.multivariate import FeatureIsolationForest
from analytics.detectors.peer import PeerGroupDetector
from analytics.detectors.thermal import ThermalResidualModel
from analytics.detectors.univariate import RobustStreamingDetector, StreamState

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
