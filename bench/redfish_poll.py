"""Redfish polling cost: 200 simulated BMCs (a real mockup served over HTTP on loopback, one
server per BMC, in a separate process), polled concurrently by `RedfishPoller`.

    python bench/redfish_poll.py [--bmcs 200] [--rounds 3] [--mockup dmtf-public-rackmount1]

Reported: CPU seconds of the polling process per 1,000 BMC polls (a poll = every chassis'
sensors, PSUs, fans, power, plus the logs), wall seconds per round, and the same for a baseline
that only GETs the same resources with raw httpx (same concurrency, no parsing or mapping): the
ratio is what the Redfish library and the mapping cost on top of the HTTP itself.
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _serve(mockup: str, n: int, conn) -> None:
    from tests.collectors.redfish_server import FakeBmc

    bmcs = [FakeBmc(mockup).start() for _ in range(n)]
    conn.send([b.url for b in bmcs])
    conn.recv()  # until told to stop
    for b in bmcs:
        b.stop()


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bmcs", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=32)
    ap.add_argument("--mockup", default="dmtf-public-rackmount1")
    args = ap.parse_args(argv)

    import httpx

    from dcops.collectors.redfish_client import BmcTarget
    from dcops.collectors.redfish_logs import read_logs
    from dcops.collectors.redfish_map import norm_path, read_bmc
    from dcops.collectors.redfish_poller import RedfishPoller
    from tests.collectors.redfish_server import FakeBmc

    parent, child = mp.Pipe()
    server = mp.Process(target=_serve, args=(args.mockup, args.bmcs, child), daemon=True)
    server.start()
    urls = parent.recv()
    user, password = "admin", "s3cret-bmc"
    targets = [BmcTarget(f"srv{i:03d}", u, user, password, True, 10.0) for i, u in enumerate(urls)]
    try:
        # the resources one poll reads (recorded once), for the baseline
        paths: list[str] = []
        probe = FakeBmc(args.mockup).start()
        with httpx.Client(auth=(user, password)) as c:
            def rec(p):
                paths.append(norm_path(p))
                r = c.get(probe.url + norm_path(p))
                return r.json() if r.status_code == 200 else None
            read_bmc(rec)
            read_logs(rec, None, time.time_ns())
        probe.stop()

        poller = RedfishPoller(targets, max_workers=args.workers)
        poller.poll()  # sessions opened, connections warm
        cpu0, t0 = _cpu(), time.monotonic()
        rows = 0
        for _ in range(args.rounds):
            batches, _, problems = poller.poll()
            rows += sum(len(b) for b in batches)
            assert not [p for p in problems if "unreachable" in p], problems[:3]
        cpu_d, wall_d = _cpu() - cpu0, time.monotonic() - t0
        poller.close()

        def fetch_all(client, url):
            for p in paths:
                client.get(url + p).content

        clients = [httpx.Client(auth=(user, password)) for _ in targets]
        with ThreadPoolExecutor(args.workers) as pool:
            list(pool.map(fetch_all, clients, urls))  # warm
            cpu1, t1 = _cpu(), time.monotonic()
            for _ in range(args.rounds):
                list(pool.map(fetch_all, clients, urls))
            cpu_b, wall_b = _cpu() - cpu1, time.monotonic() - t1
        for c in clients:
            c.close()
    finally:
        parent.send("stop")
        server.join(timeout=30)
    polls = args.bmcs * args.rounds
    out = {"bench": "redfish_poll", "mockup": args.mockup, "bmcs": args.bmcs, "rounds": args.rounds,
           "gets_per_poll": len(paths), "rows_per_round": rows // args.rounds,
           "cpu_s_per_1000_polls": round(cpu_d / polls * 1000, 2), "wall_s_per_round": round(wall_d / args.rounds, 2),
           "baseline": "raw httpx GETs of the same resources, same concurrency",
           "baseline_cpu_s_per_1000_polls": round(cpu_b / polls * 1000, 2),
           "baseline_wall_s_per_round": round(wall_b / args.rounds, 2),
           "cpu_ratio_to_baseline": round(cpu_d / cpu_b, 2) if cpu_b else None}
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
