"""The simulator's serving-engine counters: requests, prompt tokens and requests in flight as
vLLM exports them, consistent with the generated tokens."""

from __future__ import annotations

import numpy as np
import pytest

from dcops.collectors.prom_scrape import load_prom_map
from dcops.sim import Simulator
from dcops.sim.model import SERVING

START = 1_750_000_000 * 10**9
SERVING_FIELDS = ("accel_tokens_total", "accel_requests_total", "accel_prompt_tokens_total", "accel_requests_running")


def _accel(sim) -> dict[str, np.ndarray]:
    return next(b for b in sim.batches() if b.measurement == "accel").fields


def _rise(before, after, field):
    return after[field] - before[field]


def test_requests_follow_the_tokens(small_site):
    sim = Simulator(small_site, seed=5, start_ns=START)
    sim.run(3)
    a = _accel(sim)
    sim.run(20)
    b = _accel(sim)
    tokens = _rise(a, b, "accel_tokens_total")
    assert (tokens > 0).all()
    np.testing.assert_allclose(_rise(a, b, "accel_requests_total"), tokens / SERVING.generation_tokens_per_request,
                               atol=1.0)
    np.testing.assert_allclose(_rise(a, b, "accel_prompt_tokens_total"),
                               tokens * SERVING.prompt_tokens_per_request / SERVING.generation_tokens_per_request,
                               rtol=1e-3, atol=20)
    assert (b["accel_requests_running"] > 0).all()
    assert (np.diff(np.vstack([a["accel_requests_total"], b["accel_requests_total"]]), axis=0) >= 0).all()


def test_a_lost_gpu_serves_nothing_and_a_throttled_npu_serves_less(small_site):
    sim = Simulator(small_site, seed=5, start_ns=START)
    sim.run(3)
    inv = sim.inventory
    lost, hot = inv.accel_index["R1-02-S02:0"], inv.accel_index["R2-02-S01:3"]
    sim.inject("gpu_xid79", "R1-02-S02:0")
    sim.inject("npu_thermal_throttle", "R2-02-S01:3")
    sim.run(30)
    a = _accel(sim)
    a_raw = sim.requests.copy()
    sim.run(10)
    b = _accel(sim)
    assert np.isnan(b["accel_requests_total"][lost]) and np.isnan(b["accel_requests_running"][lost])
    assert sim.requests[lost] == a_raw[lost]  # no request completes on a GPU that fell off the bus
    assert sim.clk[hot] < 1.0
    per_token = _rise(a, b, "accel_requests_total") / np.maximum(_rise(a, b, "accel_tokens_total"), 1)
    assert per_token[hot] == pytest.approx(1 / SERVING.generation_tokens_per_request, rel=0.3)
    peers = [inv.accel_index[x] for x in inv.accel_ids if x.startswith("R2-02-S01:") and x != "R2-02-S01:3"]
    assert b["accel_requests_running"][hot] < np.mean(b["accel_requests_running"][peers])


def test_simulator_and_vllm_scrape_feed_the_same_fields():
    mapped = {s.metric for s in load_prom_map().serving.values()}
    assert set(SERVING_FIELDS) <= mapped
