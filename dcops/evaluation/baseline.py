"""The pipeline without correlation: the baseline `bench/outages.py` compares against.

Every alarm stays its own group (no causal parent, no grouping root), so each one that reaches
the incident threshold opens its own incident and page. Rules, alarm manager, redundancy-aware
severity, grouping wait and routing are unchanged.
"""

from __future__ import annotations

__all__ = ["disable_correlation"]


class _NoCorrelation:
    table = ()

    def explain(self, alarms):
        return {}


def disable_correlation(pipeline) -> None:
    pipeline.correlator = _NoCorrelation()
