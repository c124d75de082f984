"""A quiet peer group (NPU tools report whole degrees) must not turn 1 degC into an alarm."""

from __future__ import annotations

import numpy as np

from dcops.analytics.detectors import PeerGroupDetector
from dcops.analytics.detectors.peer import PEER_FEATURES, peer_min_scale
from dcops.analytics.fleet import ScorerParams


def test_whole_degree_readings_do_not_alarm_but_a_hot_card_does():
    det = PeerGroupDetector(min_scale=peer_min_scale()).fit(np.zeros((4, len(PEER_FEATURES))))
    X = np.array([[45.0, 50.0, 40.0]] * 7 + [[46.0, 51.0, 40.0]])
    groups = np.zeros(len(X), dtype=np.int64)
    z, _ = det.deviations(X, groups)
    assert np.nanmax(z) < ScorerParams().peer_z
    X[-1, 0] = 79.0  # an NPU whose heatsink failed
    z, _ = det.deviations(X, groups)
    assert z[-1, 0] > ScorerParams().peer_z
