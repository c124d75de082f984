"""Analytics: feature windows, scikit-learn style detectors, streaming scoring, evaluation."""
