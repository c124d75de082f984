"""Benchmark: score one interval of N accelerators (plus their servers, racks, power and
cooling) on one core, against the 2 s CPU budget per 10,000 accelerators per 10 s interval.

The site is the demo site with its halls tripled (12,288 accelerators), or with
`--accelerators N` the simulator's synthetic site of N accelerators (64 per rack), so runs at
10,000 and 100,000 compare (`cpu_us_per_accel_interval`). Batches come from the simulator, go
through the codec and the in-process bus as in production, and are scored by the streaming
scorer with trained models. Baseline, same run, same matrix: a plain scikit-learn
`IsolationForest(n_estimators=100).score_samples` over the accelerators' window features.

    python bench/scoring.py [--accelerators N] [--intervals 20] [--history 45]

Prints a table, then one JSON object as the last line.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")  # one core, as the target says

import argparse  # noqa: E402
import copy  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import yaml  # noqa: E402
from sklearn.ensemble import IsolationForest  # noqa: E402

from dcops.analytics.fleet import FleetScorer  # noqa: E402
from dcops.analytics.scorer import StreamingScorer  # noqa: E402
from dcops.analytics.training import train_bundle  # noqa: E402
from dcops.bus import InProcessBus, publish_batch  # noqa: E402
from dcops.sim import Simulator  # noqa: E402
from dcops.site import site_from_text  # noqa: E402

DEMO = Path(__file__).resolve().parents[1] / "examples" / "demo-site.yaml"


def big_site(copies: int = 3):
    doc = yaml.safe_load(DEMO.read_text())
    halls = doc["halls"]
    out = []
    names = [h["name"] for h in halls]  # every hall's name as a token of its components' names
    for k in range(copies):
        for hall in halls:
            text = json.dumps(hall)
            if k:
                for h in names:  # H1 in H1-R1-01 or CDU-H1-2, not in an H100 model name
                    text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(h)}(?![0-9])", f"{h}x{k}", text)
            out.append(json.loads(text))
    doc["halls"] = out
    return site_from_text(yaml.safe_dump(doc), "bench-site")


class Clock:
    t = 0.0

    def __call__(self):
        return self.t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--accelerators", type=int, default=None,
                    help="the synthetic site of N accelerators (default: the demo site tripled, 12,288)")
    ap.add_argument("--intervals", type=int, default=20)
    ap.add_argument("--history", type=int, default=45, help="polls simulated to train and warm the windows")
    args = ap.parse_args()
    if args.accelerators:
        from dcops.sim.sitegen import synthetic_site

        site = synthetic_site(args.accelerators)
    else:
        site = big_site()
    sim = Simulator(site, seed=0, start_ns=1_700_000_000 * 10**9)
    n_accel = len(sim.inventory.accel_ids)
    crac = sim.inventory.of_kind("cooling")[0].name
    history = []
    for _ in range(args.history):
        sim.step()
        history.append(sim.batches())
    bundle = train_bundle(sim.inventory, history, window=30)
    fleet = FleetScorer(sim.inventory, bundle)
    bus, clock = InProcessBus(max_messages=1_000_000), Clock()
    stream = StreamingScorer(bus, fleet, interval_s=sim.interval_s, lateness_s=1.0, clock=clock)
    for batches in history:  # warm the windows and baselines
        for b in batches:
            publish_batch(bus, b, key=b.measurement)
        stream.run_once(timeout_s=0, max_records=100_000)
        clock.t += 5
        stream.run_once(timeout_s=0)
    cpu, findings = [], 0
    for k in range(args.intervals):
        sim.step()
        if k == args.intervals // 2:
            sim.inject("crac_failure", crac, 600)  # a fault mid-run: findings are part of the cost
        batches = sim.batches()
        for b in batches:
            publish_batch(bus, b, key=b.measurement)
        t0 = time.process_time()
        stream.run_once(timeout_s=0, max_records=100_000)  # decode, buffer
        clock.t += 5
        findings += len(stream.run_once(timeout_s=0))  # score, encode and publish findings, commit
        cpu.append(time.process_time() - t0)

    # Baseline: plain IsolationForest over the same window-feature matrix.
    X = np.nan_to_num(copy.deepcopy(fleet.tracker).observe(batches).window)
    forest = IsolationForest(n_estimators=100, random_state=0).fit(X)
    base = []
    for _ in range(5):
        t0 = time.process_time()
        forest.score_samples(X)
        base.append(time.process_time() - t0)
    med, worst, b = statistics.median(cpu), max(cpu), statistics.median(base)
    per10k = med * 10_000 / n_accel
    print(f"accelerators per interval        {n_accel}")
    print(f"CPU per interval (median / max)  {med:.3f} s / {worst:.3f} s")
    print(f"CPU per 10,000 accelerators      {per10k:.3f} s  (budget 2.0 s)")
    print(f"baseline IsolationForest(100)    {b:.3f} s on the same {X.shape} matrix")
    print(f"findings over {args.intervals} intervals       {findings}")
    print(json.dumps({"bench": "scoring", "accelerators": n_accel, "intervals": args.intervals,
                      "interval_s": sim.interval_s, "cpu_us_per_accel_interval": round(med / n_accel * 1e6, 2),
                      "cores_at_interval": round(med / sim.interval_s, 4),
                      "cpu_s_per_interval_median": round(med, 4), "cpu_s_per_interval_max": round(worst, 4),
                      "cpu_s_per_10k_accelerators": round(per10k, 4), "budget_s": 2.0,
                      "within_budget": per10k <= 2.0, "baseline_iforest_score_samples_s": round(b, 4),
                      "ratio_to_baseline": round(med / b, 2), "findings": findings}))


if __name__ == "__main__":
    main()
