"""A stand-in vLLM server on every simulated host: its `/metrics` text from the simulator's counters.

Each simulated server "runs" one vLLM engine over all of its accelerators. What the stand-in
renders is what vLLM (v1 engine) exports on `/metrics` for the series the agent reads: counters
with their `_total` suffix, the `model_name` and `engine` labels, and `finished_reason` on
`vllm:request_success_total` (every reason present from the start, as vLLM creates them). The
values are the simulator's per-accelerator counters (`sim.tokens`, `sim.requests`,
`sim.prompt_tokens`, requests in flight) summed over the host's accelerators; a dead
accelerator's counters stay where they stopped, so the host's counters never go backwards.

    servers = SimVllm(view, {server: [accelerator rows]})
    reader = ServingReader(servers.fetcher(server), load_prom_map().serving, server)

The host sums are computed once per simulator step for all hosts (one `bincount` each); a
host's text is rendered when its agent fetches it.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping, Sequence

import numpy as np

__all__ = ["SERVED_MODEL", "SimVllm", "vllm_metrics_text"]

SERVED_MODEL = "meta-llama/Llama-3.1-70B-Instruct"


def vllm_metrics_text(tokens: float, prompt_tokens: float, requests: float, running: float,
                      model: str = SERVED_MODEL) -> str:
    """The serving part of a vLLM `/metrics` page for one engine (Prometheus text format 0.0.4)."""
    lab = f'engine="0",model_name="{model}"'
    return (
        "# HELP vllm:num_requests_running Number of requests in model execution batches.\n"
        "# TYPE vllm:num_requests_running gauge\n"
        f"vllm:num_requests_running{{{lab}}} {running!r}\n"
        "# HELP vllm:prompt_tokens_total Number of prefill tokens processed.\n"
        "# TYPE vllm:prompt_tokens_total counter\n"
        f"vllm:prompt_tokens_total{{{lab}}} {prompt_tokens!r}\n"
        "# HELP vllm:generation_tokens_total Number of generation tokens processed.\n"
        "# TYPE vllm:generation_tokens_total counter\n"
        f"vllm:generation_tokens_total{{{lab}}} {tokens!r}\n"
        "# HELP vllm:request_success_total Count of successfully processed requests.\n"
        "# TYPE vllm:request_success_total counter\n"
        f'vllm:request_success_total{{engine="0",finished_reason="stop",model_name="{model}"}} {requests!r}\n'
        f'vllm:request_success_total{{engine="0",finished_reason="length",model_name="{model}"}} 0.0\n'
        f'vllm:request_success_total{{engine="0",finished_reason="abort",model_name="{model}"}} 0.0\n'
    )


class SimVllm:
    """The stand-in vLLM servers of the simulated hosts. `view` is the agents' `SimView`."""

    def __init__(self, view, hosts: Mapping[str, Sequence[int]], model: str = SERVED_MODEL) -> None:
        self.view = view
        self.model = model
        self._slot = {h: j for j, h in enumerate(hosts)}
        n_accel = len(view.inventory.accel_ids)
        self._host_of = np.full(n_accel, len(self._slot), dtype=np.int64)  # accelerators of no host: a spare slot
        for h, ks in hosts.items():
            self._host_of[list(ks)] = self._slot[h]
        self._now: int | None = None
        self._sums: list[tuple[float, float, float, float]] = []

    def _refresh(self) -> None:
        sim = self.view.sim
        if sim.now_ns == self._now:
            return
        n = len(self._slot) + 1
        running = np.asarray(self.view.cols.get("accel_requests_running", ()), dtype=np.float64)
        if running.shape != self._host_of.shape:
            running = np.zeros(self._host_of.shape)
        cols = [np.bincount(self._host_of, weights=w, minlength=n).tolist() for w in
                (sim.tokens, sim.prompt_tokens, np.floor(sim.requests), np.nan_to_num(running))]
        self._sums = list(zip(*cols))
        self._now = sim.now_ns

    def metrics_text(self, host: str) -> str:
        """What `curl http://<host>:8000/metrics` would print now (the serving series)."""
        self.view.refresh()
        self._refresh()
        tokens, prompt, requests, running = self._sums[self._slot[host]]
        return vllm_metrics_text(float(tokens), float(prompt), float(requests), float(math.floor(running)),
                                 self.model)

    def fetcher(self, host: str) -> Callable[[], str]:
        """The host's endpoint as a fetch function for `ServingReader`."""
        return lambda: self.metrics_text(host)
