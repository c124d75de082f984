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


ACCEL = next(s for s in STREAMS if s.measurement == "accel")
TEMP = ACCEL.metrics.index("accel_temp_degc")


def _accels(job: np.ndarray, rng) -> np.ndarray:
    """(time, accelerators, metrics): whole-degree temperatures following each one's job."""
    t, n = job.shape
    X = np.full((t, n, len(ACCEL.metrics)), 1.0)
    X[:, :, TEMP] = np.round(45 + 20 * job + rng.uniform(-2, 2, n) + rng.normal(0, 0.3, (t, n)))
    X[:, :, ACCEL.metrics.index("accel_mem_temp_degc")] = X[:, :, TEMP] + 5
    X[:, :, ACCEL.metrics.index("accel_power_w")] = np.round(300 + 300 * job)
    return X


def test_an_idle_accelerator_beside_busy_ones_with_their_own_jobs_is_not_stuck():
    """Neighbours whose steps never followed this unit's say nothing about it."""
    rng = np.random.default_rng(6)
    t, n = 900, 8
    job = np.cumsum(rng.normal(0, 0.03, (t, n)), axis=0).clip(-1, 1)  # independent jobs
    job[:, 0] = -3.0  # unit 0 idle all along: a steady, whole-degree reading
    job[600:, 1:] += 1.5  # the others get busier together at the end
    X = _accels(0.5 + 0.5 * np.tanh(job), rng)
    bank = _Bank(ACCEL, n, ScorerParams(), location=np.zeros(n, dtype=np.int64))
    stuck = np.array([bank.step(x)[1][:, TEMP] for x in X])
    assert not stuck[:, 0].any()


def test_an_accelerator_on_a_steady_job_holds_while_its_host_warms_and_a_frozen_one_is_found_when_its_load_moves():
    """What the demo's quiet day paged once: one GPU's HBM held 50 degC for 53 intervals while
    the host's other GPUs, on their own jobs, warmed 4.5 degC. A unit's own temperature follows
    its own power: held while its power is steady is expected; held while its power climbs is not."""
    rng = np.random.default_rng(8)
    t, n = 1500, 8
    job = 0.5 + np.cumsum(rng.normal(0, 0.01, (t, n)), axis=0).clip(-0.3, 0.3)
    job[1000:, 0] = job[999, 0]  # unit 0: its job turns steady...
    job[1000:, 1:] += np.linspace(0, 0.25, t - 1000)[:, None]  # ...as the others get busier together
    job[1000:, 2] = job[999, 2] + np.linspace(0, 0.3, t - 1000)  # unit 2 too, but its sensor froze
    X = _accels(job, rng)
    X[1000:, 0, TEMP] = X[999, 0, TEMP]  # a steady die in whole degrees: one value for minutes
    X[1000:, 2, TEMP] = X[999, 2, TEMP]
    bank = _Bank(ACCEL, n, ScorerParams(), location=np.zeros(n, dtype=np.int64))
    stuck = np.array([bank.step(x)[1][:, TEMP] for x in X])
    assert not stuck[:, 0].any(), np.argwhere(stuck[:, 0])[:5]
    assert stuck[1000:, 2].any(), "a frozen temperature not found while its own power climbed"
    assert not stuck[:, [1, 3, 4, 5, 6, 7]].any()
