"""Every detector honours scikit-learn's estimator and outlier-detector contract."""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from dcops.analytics.detectors import DETECTORS


@parametrize_with_checks([cls() for cls in DETECTORS.values()])
def test_sklearn_contract(estimator, check):
    check(estimator)
