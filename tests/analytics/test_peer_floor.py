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


def test_a_unit_back_in_the_pack_drops_an_offset_that_crept_in_with_a_drift():
    """A filter clogging over hours drags its peer offset along (each step is small); once the
    filter is changed the unit reads like its peers again and must not be flagged for ever
    against the offset it had."""
    import numpy as np

    from dcops.analytics.detectors.peer import PeerOffsets

    offsets = PeerOffsets((1, 1), alpha=0.01, warmup=5)
    scale = np.array([[20.0]])
    for dev in np.linspace(0, 380, 3000):  # the drift: 0 -> 380 Pa above the peers' median
        z = offsets.z(np.array([[dev]]), scale)
        offsets.update(np.array([[dev]]), z, scale)
    assert offsets.offset[0, 0] > 300
    dev = np.array([[-25.0]])  # a new filter, a little below the median
    assert offsets.z(dev, scale)[0, 0] > 15
    offsets.update(dev, offsets.z(dev, scale), scale)
    assert offsets.z(dev, scale)[0, 0] == 0.0
    far = np.array([[-200.0]])  # far from the pack is still abnormal and not learned
    offsets.update(far, offsets.z(far, scale), scale)
    assert offsets.offset[0, 0] == -25.0
