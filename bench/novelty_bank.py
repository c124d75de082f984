"""Benchmark: the univariate novelty core (`NoveltyBank`) over a fleet-sized bank of series.

12,288 series (one metric of every accelerator of the tripled demo site), one row per update,
default parameters, one core. Baseline, same run, same data: a rolling robust z-score of each
series against its last 60 rows (numpy median/MAD over a (series, 60) ring), the kind of
per-interval univariate check a fleet scorer does anyway.

    python bench/novelty_bank.py [--series 12288] [--updates 300] [--block 50]

Prints a table, then one JSON object as the last line.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")  # one core

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from dcops.analytics.detectors.novelty import NoveltyBank  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=12288)
    ap.add_argument("--updates", type=int, default=300)
    ap.add_argument("--block", type=int, default=50)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    rows = np.cumsum(rng.normal(size=(args.updates, args.series)), axis=0)
    bank = NoveltyBank(args.series, block=args.block, quiet_rows=0)
    ring = np.zeros((args.series, 60))
    cpu, base = [], []
    for i, row in enumerate(rows):
        t0 = time.process_time()
        scores = bank.update(row)
        cpu.append(time.process_time() - t0)
        t0 = time.process_time()
        ring[:, i % 60] = row
        med = np.median(ring, axis=1)
        mad = np.median(np.abs(ring - med[:, None]), axis=1) + 1e-9
        _ = np.abs(row - med) / mad
        base.append(time.process_time() - t0)
    med_cpu, max_cpu, med_base = statistics.median(cpu), max(cpu), statistics.median(base)
    per10k = med_cpu * 10_000 / args.series
    print(f"series per update               {args.series}")
    print(f"CPU per update (median / max)   {med_cpu:.4f} s / {max_cpu:.4f} s")
    print(f"CPU per 10,000 series (median)  {per10k:.4f} s  (fleet budget 2.0 s per interval, all detectors)")
    print(f"baseline rolling robust z (60)  {med_base:.4f} s")
    print(f"series scoring > 0 last update  {int((scores > 0).sum())}")
    print(json.dumps({"bench": "novelty_bank", "series": args.series, "updates": args.updates, "block": args.block,
                      "cpu_s_per_update_median": round(med_cpu, 4), "cpu_s_per_update_max": round(max_cpu, 4),
                      "cpu_s_per_10k_series": round(per10k, 4), "budget_s": 2.0, "within_budget": per10k < 2.0,
                      "baseline_robust_z_s": round(med_base, 4), "ratio_to_baseline": round(med_cpu / med_base, 2)}))


if __name__ == "__main__":
    main()
