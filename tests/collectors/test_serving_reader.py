"""The host agent's inference-server reader: a recorded vLLM /metrics page, shares over the
accelerators that are up, an endpoint that fails, and `HostAgent` carrying the tokens."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pytest

from dcops.collectors.accel_common import build_accel_batch, share_evenly
from dcops.collectors.host_agent import HostAgent
from dcops.collectors.nvml_agent import NvmlAgent
from dcops.collectors.nvml_standin import NvmlStandin, StaticBackend, typical_gpu
from dcops.collectors.prom_scrape import load_prom_map
from dcops.collectors.serving_reader import SeriesMemo, ServingReader, serving_totals

VLLM = (Path(__file__).parents[1] / "data" / "prom" / "vllm-metrics.txt").read_text()
T0 = 1_700_000_000_000_000_000


@pytest.fixture(scope="module")
def serving():
    return load_prom_map().serving


def _batch(up):
    targets = [{"site": "", "hall": "", "row": "", "rack": "", "device": "h1", "accel": str(i), "vendor": "nvidia",
                "model": "H100", "uuid": f"GPU-{i}"} for i in range(len(up))]
    return build_accel_batch(T0, targets, ("accel_up", "accel_power_w"), [[u, 500.0] for u in up])


def test_recorded_vllm_page_maps_through_the_serving_table(serving):
    totals = serving_totals(VLLM, serving)
    assert totals == {"accel_tokens_total": 2.4000016e8, "accel_prompt_tokens_total": 8.812345e8,
                      "accel_requests_total": 131000.0,  # stop + length + abort
                      "accel_requests_running": 37.0}


def test_memo_reads_new_values_of_known_series(serving):
    memo = SeriesMemo(serving)
    assert memo.totals(VLLM)["accel_tokens_total"] == 2.4000016e8
    later = VLLM.replace("2.4000016e+08", "2.5e+08").replace("} 118000.0", "} 118500.0")
    again = memo.totals(later)
    assert again["accel_tokens_total"] == 2.5e8 and again["accel_requests_total"] == 131500.0
    assert memo.totals(later.replace(" 2.5e+08", " 2.5e+08 1700000000000")) == again  # a timestamp is allowed


def test_shares_go_to_the_accelerators_that_are_up(serving):
    reader = ServingReader(lambda: VLLM, serving, "h1")
    (b,) = reader.annotate([_batch([1.0, 1.0, 0.0, 1.0])])
    tok = b.fields["accel_tokens_total"]
    assert np.allclose(tok[[0, 1, 3]], 2.4000016e8 / 3) and math.isnan(tok[2])
    assert np.allclose(b.fields["accel_requests_total"][[0, 1, 3]], 131000.0 / 3)
    assert b.fields["accel_power_w"].tolist() == [500.0] * 4
    assert share_evenly({"accel_tokens_total": 1.0}, [False, False]) == {}


def test_failing_endpoint_is_logged_once_and_rows_still_publish(serving, caplog):
    state = {"fail": True}

    def fetch():
        if state["fail"]:
            raise ConnectionError("scrape of http://127.0.0.1:8000/metrics failed: connection refused")
        return VLLM

    reader = ServingReader(fetch, serving, "h1")
    with caplog.at_level(logging.WARNING, logger="dcops.collectors.serving_reader"):
        for _ in range(3):
            (b,) = reader.annotate([_batch([1.0, 1.0])])
            assert "accel_tokens_total" not in b.fields and len(b) == 2
    assert len([r for r in caplog.records if "unreadable" in r.getMessage()]) == 1
    state["fail"] = False
    (b,) = reader.annotate([_batch([1.0, 1.0])])
    assert reader.failing is None and b.fields["accel_tokens_total"].tolist() == [1.2000008e8] * 2


@pytest.mark.parametrize("text", ["<html>502 Bad Gateway</html>", 'vllm:generation_tokens_total{model_name="x} 1\n'])
def test_text_that_is_not_a_serving_page_costs_only_the_tokens(serving, text):
    reader = ServingReader(lambda: text, serving, "h1")
    (b,) = reader.annotate([_batch([1.0])])
    assert "accel_tokens_total" not in b.fields and reader.failing


def test_host_agent_batch_carries_the_tokens(serving):
    nvml = NvmlAgent(NvmlStandin(StaticBackend([typical_gpu(0), typical_gpu(1)])), "gpu-node-07", clock=lambda: T0)
    nvml.start()
    agent = HostAgent("gpu-node-07", nvml=nvml, serving=ServingReader(lambda: VLLM, serving, "gpu-node-07"))
    (batch,), _, problems = agent.poll()
    assert batch.fields["accel_tokens_total"].tolist() == [1.2000008e8, 1.2000008e8]
    assert batch.fields["accel_requests_running"].tolist() == [18.5, 18.5]
    assert not problems


def test_an_accelerator_going_down_does_not_make_the_others_counters_jump(serving):
    page = lambda tokens: VLLM.replace("2.4000016e+08", repr(float(tokens)))  # noqa: E731
    texts = iter([page(8e8), page(8e8 + 800), page(8e8 + 1500), page(8e8 + 2300), page(100.0)])
    reader = ServingReader(lambda: next(texts), serving, "h1")
    tok = lambda up: reader.annotate([_batch(up)])[0].fields["accel_tokens_total"]  # noqa: E731
    first = tok([1.0] * 4)
    assert first.tolist() == [2e8] * 4
    second = tok([1.0] * 4)
    assert (second - first).tolist() == [200.0] * 4
    third = tok([1.0, 1.0, 1.0, 0.0])  # one down: the rise goes to the three left, no jump
    assert np.allclose((third - second)[:3], 700.0 / 3) and math.isnan(third[3])
    back = tok([1.0] * 4)  # back again: it goes on from where it stopped
    assert back[3] == second[3] + 200.0 and (back >= second).all()
    restarted = tok([1.0] * 4)  # the server restarted: an even split of the new total (a reset)
    assert restarted.tolist() == [25.0] * 4
