"""One SNMP polling round over many agents, against net-snmp's snmpbulkwalk as the baseline.

Agents: `--agents` (1,000) UPS-MIB agents of ~42 OIDs each (9 scalars, 3-line input, output and
bypass tables), served by `--instances` net-snmp `snmpd` processes, each listening on its share of
the agents' loopback UDP ports, so every agent is its own endpoint (values from `override` lines). The poller (this process,
pysnmp 7 asyncio, profile fixed as in steady state) polls all of them once after a warm-up
round; reported: the round's wall time, the poller's CPU seconds per 1,000 agent polls, OIDs/s.
The poller runs twice on the same agents: with its light SNMPv2c codec (snmp_ber.py, the
default) and through pysnmp/pyasn1 (`SnmpClient(fast_v2c=False)`, what SNMPv3 uses; the path
before this codec): that ratio is the codec's gain. A `--profile` run (cProfile) says where the
CPU goes. Second baseline, in the same run: `snmpbulkwalk` walking the same subtree of `--baseline-agents` of the
agents one after another (each walk a process, like a cron script), extrapolated to all agents.

    .venv/bin/python bench/snmp_poll.py [--agents 1000] [--instances 4] [--concurrency 16]

Prints a few lines, the last one a JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dcops.collectors.snmp_engine import SnmpClient  # noqa: E402
from dcops.collectors.snmp_poller import PollTarget, SnmpPoller  # noqa: E402
from dcops.site import SnmpTarget  # noqa: E402

_spec = importlib.util.spec_from_file_location("snmp_fixtures", REPO / "tests" / "integration" / "snmp_fixtures.py")
fx = importlib.util.module_from_spec(_spec)
sys.modules["snmp_fixtures"] = fx
_spec.loader.exec_module(fx)


def ups_values() -> dict[str, tuple[str, object]]:
    v = {
        "1.3.6.1.2.1.33.1.1.1.0": ("octet_str", "bench"),
        "1.3.6.1.2.1.33.1.2.2.0": ("integer", 0), "1.3.6.1.2.1.33.1.2.3.0": ("integer", 35),
        "1.3.6.1.2.1.33.1.2.4.0": ("integer", 100), "1.3.6.1.2.1.33.1.2.5.0": ("integer", 2170),
        "1.3.6.1.2.1.33.1.2.6.0": ("integer", 0), "1.3.6.1.2.1.33.1.2.7.0": ("integer", 27),
        "1.3.6.1.2.1.33.1.4.1.0": ("integer", 3), "1.3.6.1.2.1.33.1.4.2.0": ("integer", 500),
        "1.3.6.1.2.1.33.1.5.1.0": ("integer", 500),
    }
    for line in (1, 2, 3):
        v.update({
            f"1.3.6.1.2.1.33.1.3.3.1.2.{line}": ("integer", 500), f"1.3.6.1.2.1.33.1.3.3.1.3.{line}": ("integer", 230 + line),
            f"1.3.6.1.2.1.33.1.3.3.1.4.{line}": ("integer", 400 + line), f"1.3.6.1.2.1.33.1.3.3.1.5.{line}": ("integer", 9000 + line),
            f"1.3.6.1.2.1.33.1.4.4.1.2.{line}": ("integer", 230), f"1.3.6.1.2.1.33.1.4.4.1.3.{line}": ("integer", 390 + line),
            f"1.3.6.1.2.1.33.1.4.4.1.4.{line}": ("integer", 8800 + line), f"1.3.6.1.2.1.33.1.4.4.1.5.{line}": ("integer", 61),
            f"1.3.6.1.2.1.33.1.5.3.1.2.{line}": ("integer", 231), f"1.3.6.1.2.1.33.1.5.3.1.3.{line}": ("integer", 0),
            f"1.3.6.1.2.1.33.1.5.3.1.4.{line}": ("integer", 0),
        })
    return v


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--agents", type=int, default=1000)
    ap.add_argument("--instances", type=int, default=4)
    ap.add_argument("--concurrency", type=int, default=64,
                    help="polls in flight (loopback agents answer in microseconds: more only queues in pysnmp)")
    ap.add_argument("--baseline-agents", type=int, default=200)
    ap.add_argument("--profile", action="store_true", help="cProfile one extra steady-state round of the light path; top functions")
    args = ap.parse_args()

    values = ups_values()
    per = -(-args.agents // args.instances)
    ports = fx.free_udp_ports(args.agents)
    shares = [ports[j * per:(j + 1) * per] for j in range(args.instances)]
    daemons = [fx.Snmpd(values, communities=("public",), port=sh[0], extra_ports=sh[1:]) for sh in shares if sh]
    for d in daemons:
        d.__enter__()
    try:
        agents = [(d, p) for d in daemons for p in d.ports][:args.agents]  # one agent per (instance, port)
        targets = [PollTarget(f"ups{i}", {"site": "bench", "hall": "H1", "device": f"ups{i}"},
                              SnmpTarget(port=p, community="public", profile="ups-mib", timeout_s=5.0, retries=2))
                   for i, (d, p) in enumerate(agents)]
        values_seen = {"n": 0, "batches": 0}

        def on_batches(dev, batches):
            values_seen["batches"] += len(batches)
            values_seen["n"] += sum(b.n_values for b in batches)

        def agents_cpu() -> float:
            tck = os.sysconf("SC_CLK_TCK")
            total = 0
            for d in daemons:
                fields = Path(f"/proc/{d.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
            return total / tck

        async def rounds(fast: bool):
            client = SnmpClient(fast_v2c=fast)
            poller = SnmpPoller(targets, client, on_batches=on_batches, on_events=lambda e: None, max_concurrency=args.concurrency)
            try:
                t0 = time.perf_counter()
                warm = await poller.poll_round()
                cold_wall = time.perf_counter() - t0
                values_seen.update(n=0, batches=0)
                a0 = agents_cpu()
                c0, t0 = time.process_time(), time.perf_counter()
                res = await poller.poll_round()
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                values_seen["agents_cpu"] = agents_cpu() - a0
                if args.profile and fast:
                    import cProfile
                    import pstats

                    prof = cProfile.Profile()
                    prof.enable()
                    await poller.poll_round()
                    prof.disable()
                    pstats.Stats(prof).sort_stats("tottime").print_stats(12)
                return warm, cold_wall, res, wall, cpu
            finally:
                client.close()

        slow = asyncio.run(rounds(False))
        slow_cpu, slow_wall, slow_ok = slow[4], slow[3], sum(r.ok for r in slow[2])
        print(f"pysnmp path: {slow_ok}/{len(slow[2])} agents ok in {slow_wall:.2f}s wall, {slow_cpu:.2f} CPU s")
        warm, cold_wall, res, wall, cpu = asyncio.run(rounds(True))
        ok = sum(r.ok for r in res)
        oids = sum(len(r.readings) for r in res)
        durs = sorted(r.duration_s for r in res)
        print(f"poll durations: median {durs[len(durs) // 2] * 1000:.1f} ms, p99 {durs[int(len(durs) * 0.99)] * 1000:.1f} ms, "
              f"max {durs[-1] * 1000:.1f} ms, {sum(d > 1.0 for d in durs)} over 1 s")
        print(f"poller: {ok}/{len(res)} agents ok, {oids} values in {wall:.2f}s wall (cold round {cold_wall:.2f}s), {cpu:.2f} CPU s;"
              f" the snmpd agents used {values_seen['agents_cpu']:.2f} CPU s")

        # baseline: snmpbulkwalk, one agent after another
        nb = min(args.baseline_agents, len(agents))
        step = max(1, len(agents) // nb)
        sample = agents[::step][:nb]
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        walked = 0
        for d, p in sample:
            out = subprocess.run(["snmpbulkwalk", "-v2c", "-c", "public", "-On", "-Cr25", "-t", "5", "-r", "2",
                                  f"127.0.0.1:{p}", "1.3.6.1.2.1.33"], capture_output=True, text=True)
            walked += out.stdout.count("\n")
        base_wall = (time.perf_counter() - t0) * len(agents) / nb
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        base_cpu = ((ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)) * len(agents) / nb
        print(f"snmpbulkwalk: {nb} agents walked ({walked} OIDs), extrapolated to {len(agents)}: {base_wall:.2f}s wall, {base_cpu:.2f} CPU s")
    finally:
        for d in daemons:
            d.__exit__()

    result = {
        "bench": "snmp_poll", "agents": len(agents), "snmpd_instances": args.instances, "concurrency": args.concurrency,
        "oids_per_agent": round(oids / max(ok, 1), 1), "agents_ok": ok,
        "round_wall_s": round(wall, 3), "cold_round_wall_s": round(cold_wall, 3),
        "poller_cpu_s_per_1000_polls": round(cpu * 1000 / len(agents), 3),
        "snmpd_agents_cpu_s": round(values_seen["agents_cpu"], 3), "cpu_cores": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "oids_per_s": round(oids / wall, 1),
        "pysnmp_path_round_wall_s": round(slow_wall, 3),
        "pysnmp_path_cpu_s_per_1000_polls": round(slow_cpu * 1000 / len(agents), 3),
        "cpu_ratio_pysnmp_over_light": round(slow_cpu / max(cpu, 1e-9), 2),
        "baseline_snmpbulkwalk_sequential_wall_s": round(base_wall, 3),
        "baseline_snmpbulkwalk_cpu_s_per_1000": round(base_cpu * 1000 / len(agents), 3),
        "speedup_vs_snmpbulkwalk_wall": round(base_wall / wall, 2),
        "targets_met": {"wall_lt_5s": wall < 5.0, "cpu_le_2s_per_1000": cpu * 1000 / len(agents) <= 2.0},
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
