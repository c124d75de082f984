"""Stuck sensors quantised coarser than their noise: judged by whether the air around them moved.

Server inlets in whole degrees (what BMCs report) in a steady cold aisle sit on one value for
hours when healthy. Their repeats say nothing until the quantity they measure changes; their
neighbours in the rack measure it, with different biases that dither the steps.
"""

from __future__ import annotations

import numpy as np

from dcops.analytics.features import STREAMS
from dcops.analytics.fleet import ScorerParams, _Bank

SERVER = next(s for s in STREAMS if s.measurement == "server")
INLET = SERVER.metrics.index("server_inlet_temp_degc")


def _readings(air: np.ndarray, n: int, rng) -> np.ndarray:
    """(time, servers, metrics): whole-degree inlets = air + per-unit bias + noise, rounded."""
    bias = rng.uniform(-1.5, 1.5, n)
    X = np.full((len(air), n, len(SERVER.metrics)), 1.0)
    X[:, :, SERVER.metrics.index("server_fan_pct")] = 40.0
    X[:, :, INLET] = np.round(air[:, None] + bias[None, :] + rng.normal(0, 0.2, (len(air), n)))
    return X


def _stuck(bank: _Bank, X: np.ndarray) -> np.ndarray:
    return np.array([bank.step(x)[1][:, INLET] for x in X])


def test_steady_aisle_whole_degree_inlets_are_never_stuck_and_a_frozen_one_is_found_when_the_air_moves():
    rng = np.random.default_rng(3)
    n, steady, ramp = 16, 2160, 240  # six hours steady at 10 s, then the aisle warms by 3 degC in 40 min
    air = np.concatenate([22.3 + 0.1 * np.sin(np.arange(steady) / 400.0),
                          22.3 + np.linspace(0, 3.0, ramp)])
    X = _readings(air, n, rng)
    X[steady:, 0, INLET] = X[steady - 1, 0, INLET]  # unit 0 freezes as the air starts to move
    bank = _Bank(SERVER, n, ScorerParams(), location=np.zeros(n, dtype=np.int64))
    stuck = _stuck(bank, X)
    assert not stuck[:steady].any(), np.argwhere(stuck[:steady])[:5]
    assert stuck[steady:, 0].any(), "a frozen inlet not found while the whole rack warmed by 3 degC"
    assert not stuck[steady:, 1:].any()


def test_without_neighbours_the_sensors_own_history_decides():
    rng = np.random.default_rng(4)
    n = 8
    air = 22.0 + 0.8 * np.sin(np.arange(600) / 9.0)  # a moving signal: every unit changes often
    X = _readings(air, n, rng)
    X[400:, 0, INLET] = X[399, 0, INLET]
    bank = _Bank(SERVER, n, ScorerParams())  # no location: no reference
    stuck = _stuck(bank, X)
    assert not stuck[:400].any() and stuck[400:, 0].any() and not stuck[:, 1:].any()


def test_a_rack_whose_neighbours_warm_from_their_own_load_is_not_ambient():
    """Accelerator temperatures follow each unit's own load: neighbours warming says nothing."""
    accel = next(s for s in STREAMS if s.measurement == "accel")
    assert not set(accel.ambient) and "server_inlet_temp_degc" in SERVER.ambient
