"""Benchmark: the NAB novelty vote on the fleet's held quantities (`novelty`), a fault-free
simulated day per site: how many pages it would raise, and what it costs.

Each site runs fault-free from midnight UTC for NAB's probation (750 intervals) plus one whole
day at 10 s (the simulated load follows the time of day, so the day covers its peak), at the
resolution real collectors deliver (the simulator's quantised readings). Every interval is
scored by a `FleetScorer` running the novelty detector alone; a page is an episode of findings
at or above the anomaly rule's `min_score` (0.8) on one component (findings in consecutive
intervals are one episode). Baseline, same run, same features: the slow-drift detector, which
watches the same kind of quantities (cost ratio novelty / slow drift).

    python bench/novelty_fleet.py [--site demo|small|FILE ...] [--seed 1] [--hours 24]

Prints a line per site, then one JSON object as the last line.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")  # one core

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from dcops.analytics.detectors.drift import SLOW_DRIFT  # noqa: E402
from dcops.analytics.detectors.novelty import NOVELTY, QUIET_ROWS  # noqa: E402
from dcops.analytics.fleet import FleetScorer  # noqa: E402
from dcops.data import site_file  # noqa: E402
from dcops.sim import Simulator  # noqa: E402
from dcops.site import load_site  # noqa: E402

PAGE = 0.8
MIDNIGHT_NS = 1_765_152_000 * 10**9  # 2025-12-08 00:00 UTC


def _site(name: str):
    site = load_site(site_file(f"{name}-site.yaml") if name in ("demo", "small") else Path(name))
    return site, site.site


def run_site(name: str, seed: int, hours: float) -> dict:
    site, label = _site(name)
    sim = Simulator(site, seed=seed, start_ns=MIDNIGHT_NS)
    novelty = FleetScorer(sim.inventory, None, detectors={"novelty": NOVELTY})
    drift = FleetScorer(sim.inventory, None, detectors={"slow_drift": SLOW_DRIFT})
    series = sum(len(v[1]) * len(v[5]) for v in novelty.parts["novelty"].streams.values())
    steps = QUIET_ROWS + int(round(hours * 360))
    open_: dict[str, int] = {}  # component -> last interval it had a paging finding
    pages, findings, cpu_n, cpu_d = [], 0, 0.0, 0.0
    for k in range(steps):
        sim.step()
        batches = sim.batches()
        t0 = time.process_time()
        got = novelty.score(batches)
        cpu_n += time.process_time() - t0
        t0 = time.process_time()
        drift.score(batches)
        cpu_d += time.process_time() - t0
        findings += len(got)
        for f in got:
            if f.score < PAGE:
                continue
            if open_.get(f.component, -10) < k - 1:
                pages.append({"interval": k, "hour_utc": round(k / 360, 2), "component": f.component,
                              "score": round(f.score, 3), "why": f.explanation})
            open_[f.component] = k
    scored_h = (steps - QUIET_ROWS) / 360
    row = {"site": label, "series": series, "scored_hours": round(scored_h, 2), "findings": findings,
           "pages": len(pages), "pages_per_day": round(len(pages) * 24 / scored_h, 2),
           "cpu_ms_per_interval": round(1000 * cpu_n / steps, 3),
           "baseline_slow_drift_cpu_ms_per_interval": round(1000 * cpu_d / steps, 3),
           "ratio_to_baseline": round(cpu_n / max(cpu_d, 1e-9), 2), "first_pages": pages[:5]}
    print(f"{label:10s} {series:5d} series  {scored_h:5.1f} h scored  {len(pages)} page(s)  "
          f"{row['cpu_ms_per_interval']:.2f} ms/interval (slow drift {row['baseline_slow_drift_cpu_ms_per_interval']:.2f})",
          flush=True)
    for p in pages[:5]:
        print(f"    {p}", flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--site", nargs="+", default=["demo", "small"])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--hours", type=float, default=24.0)
    args = ap.parse_args()
    rows = [run_site(s, args.seed, args.hours) for s in args.site]
    total_h = sum(r["scored_hours"] for r in rows)
    print(json.dumps({"bench": "novelty_fleet", "seed": args.seed, "sites": rows,
                      "pages": sum(r["pages"] for r in rows), "scored_hours": round(total_h, 2),
                      "pages_per_day": round(sum(r["pages"] for r in rows) * 24 / max(total_h, 1e-9), 3),
                      "target_pages_per_day": 1.0,
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))


if __name__ == "__main__":
    main()
