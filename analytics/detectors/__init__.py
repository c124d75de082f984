"""Detectors. Each follows scikit-learn's outlier-detector contract."""
