"""Accelerator agent benchmark: CPU time per poll per GPU, one agent with 8 GPUs.

The agent polls 8 GPUs through the pynvml stand-in (`NvmlStandin`) and builds one `accel`
batch per poll, encoded for the bus. Measured as thread CPU time:

- back-to-back: `--polls` polls as fast as they go;
- at 1 Hz: `--seconds` seconds of polling each second, as the agent runs on a host;
- baseline, same run: the same NVML calls made directly on the stand-in, no agent (so the
  ratio is the agent's own cost on top of the calls it has to make);
- demo scale: every simulated server of examples/demo-site.yaml polled once per round
  (`SimAgents`), CPU per round and per accelerator.

Target: under 5 ms per GPU per poll. Last line: one JSON object.

    python bench/agent.py [--polls 2000] [--seconds 5] [--demo-rounds 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import peak_rss_mb, report  # noqa: E402

N_GPUS = 8
TARGET_MS = 5.0


def _raw_calls(n, handles) -> None:
    """What the agent asks NVML for, called directly: the floor the agent cannot go below."""
    fids = (n.NVML_FI_DEV_MEMORY_TEMP, n.NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION,
            n.NVML_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL, n.NVML_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL,
            n.NVML_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL, n.NVML_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL)
    for h in handles:
        n.nvmlDeviceGetTemperature(h, n.NVML_TEMPERATURE_GPU)
        n.nvmlDeviceGetPowerUsage(h)
        n.nvmlDeviceGetEnforcedPowerLimit(h)
        n.nvmlDeviceGetFieldValues(h, fids)
        n.nvmlDeviceGetClockInfo(h, n.NVML_CLOCK_SM)
        n.nvmlDeviceGetClockInfo(h, n.NVML_CLOCK_MEM)
        n.nvmlDeviceGetUtilizationRates(h)
        n.nvmlDeviceGetMemoryInfo(h)
        n.nvmlDeviceGetPerformanceState(h)
        n.nvmlDeviceGetCurrentClocksEventReasons(h)
        for e in (0, 1):
            for c in (0, 1):
                n.nvmlDeviceGetTotalEccErrors(h, e, c)
        n.nvmlDeviceGetRemappedRows(h)
        n.nvmlDeviceGetPcieReplayCounter(h)
        n.nvmlDeviceGetCurrPcieLinkGeneration(h)
        n.nvmlDeviceGetCurrPcieLinkWidth(h)


def single_host(polls: int, seconds: float) -> dict:
    from dcops.collectors.nvml_agent import NvmlAgent
    from dcops.collectors.nvml_standin import NvmlStandin, StaticBackend, typical_gpu
    from dcops.codec import encode_batch

    nvml = NvmlStandin(StaticBackend([typical_gpu(i) for i in range(N_GPUS)]))
    agent = NvmlAgent(nvml, "bench-host")
    agent.start()
    for _ in range(20):  # warm up
        encode_batch(agent.poll()[0])
        _raw_calls(nvml, agent.handles)

    t0 = time.thread_time()
    for _ in range(polls):
        encode_batch(agent.poll()[0])
    agent_ms = (time.thread_time() - t0) * 1e3 / polls / N_GPUS

    t0 = time.thread_time()
    for _ in range(polls):
        _raw_calls(nvml, agent.handles)
    base_ms = (time.thread_time() - t0) * 1e3 / polls / N_GPUS

    # At 1 Hz, as on a host: CPU per poll including wake-ups.
    n1 = 0
    cpu0, wall0 = time.thread_time(), time.monotonic()
    next_at = wall0
    while time.monotonic() - wall0 < seconds:
        encode_batch(agent.poll()[0])
        n1 += 1
        next_at += 1.0
        time.sleep(max(0.0, next_at - time.monotonic()))
    hz_ms = (time.thread_time() - cpu0) * 1e3 / max(n1, 1) / N_GPUS
    return {"cpu_ms_per_poll_per_gpu": round(agent_ms, 4), "baseline_raw_nvml_calls_ms_per_gpu": round(base_ms, 4),
            "ratio_agent_vs_raw_calls": round(agent_ms / base_ms, 2), "cpu_ms_per_poll_per_gpu_at_1hz": round(hz_ms, 4),
            "polls_at_1hz": n1}


def demo_scale(rounds: int) -> dict:
    from dcops.collectors.sim_agents import SimAgents
    from dcops.bus import InProcessBus
    from dcops.sim import Simulator
    from dcops.site import load_site

    cfg = load_site(Path(__file__).resolve().parents[1] / "examples" / "demo-site.yaml")
    sim = Simulator(cfg, seed=0)
    bus = InProcessBus(max_messages=10**7)
    agents = SimAgents(sim, bus)
    hosts = len(agents.gpu_hosts) + len(agents.npu_hosts)
    sim_cpu = agent_cpu = 0.0
    for _ in range(rounds):
        t0 = time.thread_time()
        sim.step()
        t1 = time.thread_time()
        agents.collect()
        t2 = time.thread_time()
        sim_cpu += t1 - t0
        agent_cpu += t2 - t1
    n = sim.inventory.n_accel
    return {"demo_hosts": hosts, "demo_accelerators": n, "demo_agents_cpu_s_per_round": round(agent_cpu / rounds, 4),
            "demo_agents_cpu_ms_per_accel": round(agent_cpu / rounds / n * 1e3, 4),
            "demo_sim_step_cpu_s": round(sim_cpu / rounds, 4)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--polls", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--demo-rounds", type=int, default=5)
    args = ap.parse_args(argv)
    res = {"bench": "agent", "gpus": N_GPUS, "target_ms_per_gpu": TARGET_MS}
    res.update(single_host(args.polls, args.seconds))
    res["meets_target"] = res["cpu_ms_per_poll_per_gpu"] < TARGET_MS
    print(f"agent: {res['cpu_ms_per_poll_per_gpu']:.4f} ms CPU per GPU per poll "
          f"(raw NVML calls alone {res['baseline_raw_nvml_calls_ms_per_gpu']:.4f} ms; ratio {res['ratio_agent_vs_raw_calls']})")
    if args.demo_rounds:
        res.update(demo_scale(args.demo_rounds))
        print(f"demo: {res['demo_hosts']} hosts / {res['demo_accelerators']} accelerators: "
              f"{res['demo_agents_cpu_s_per_round']:.3f} s CPU per round")
    res["peak_rss_mb"] = round(peak_rss_mb(), 1)
    report(res)


if __name__ == "__main__":
    main()
