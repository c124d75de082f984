"""The simulated hosts' stand-in vLLM servers, and the agents that read them."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from dcops.collectors.sim_agents import SimAgents
from dcops.collectors.vllm_standin import SERVED_MODEL, vllm_metrics_text
from dcops.sim import Simulator


@pytest.fixture()
def sim(small_site):
    s = Simulator(small_site, seed=3, start_ns=1_700_000_000_000_000_000)
    s.step()
    return s


def test_text_is_what_vllm_exports():
    fams = {f.name: f for f in text_string_to_metric_families(vllm_metrics_text(1e9, 3e9, 2e6, 12.0))}
    assert fams["vllm:generation_tokens"].type == "counter"
    assert [s.name for s in fams["vllm:generation_tokens"].samples] == ["vllm:generation_tokens_total"]
    success = fams["vllm:request_success"].samples
    assert {s.labels["finished_reason"] for s in success} == {"stop", "length", "abort"}
    assert sum(s.value for s in success) == 2e6
    assert all(s.labels["model_name"] == SERVED_MODEL for f in fams.values() for s in f.samples)
    assert fams["vllm:num_requests_running"].type == "gauge"


def test_agent_batches_carry_the_hosts_tokens(sim):
    agents = SimAgents(sim)
    sim.step()
    out = agents.poll()
    inv = sim.inventory
    assert out
    for _, batch, _ in out:
        host = str(batch.tags["device"][0])
        ks = [inv.accel_index[a] for a in inv.accel_ids if a.rpartition(":")[0] == host]
        tok = batch.fields["accel_tokens_total"]
        up = batch.fields["accel_up"] == 1.0
        assert np.isnan(tok[~up]).all()
        assert tok[up].sum() == pytest.approx(float(sim.tokens[ks].sum()))
        assert batch.fields["accel_requests_total"][up].sum() == pytest.approx(float(np.floor(sim.requests[ks]).sum()))
        assert "accel_prompt_tokens_total" in batch.fields and "accel_requests_running" in batch.fields
