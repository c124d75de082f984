"""Simulator speed on a site: how long a simulated day takes, physics alone and with readings.

    python bench/sim.py [--site examples/demo-site.yaml] [--hours 24]

Two runs over the same seed and the same number of steps (one per sample interval):

- physics: `Simulator.step()` only (thermal, power, battery, faults);
- with readings: each step also builds the step's samples as the collectors deliver them
  (`Simulator.batches()`: bias, noise, resolution, telemetry cuts), which is what `dcops sim`
  and the demo do every interval.

The baseline is the physics run; the ratio says what producing the readings costs on top.
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import peak_rss_mb, report  # noqa: E402

from dcops.sim import Simulator  # noqa: E402
from dcops.site import load_site  # noqa: E402

DEMO = Path(__file__).resolve().parents[1] / "examples" / "demo-site.yaml"


def _run(site, steps: int, interval_s: float, readings: bool) -> tuple[float, int]:
    sim = Simulator(site, seed=0, interval_s=interval_s)
    values = 0
    t0 = time.process_time()
    for _ in range(steps):
        sim.step()
        if readings:
            values += sum(b.n_values for b in sim.batches())
    return time.process_time() - t0, values


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--site", type=Path, default=DEMO)
    ap.add_argument("--hours", type=float, default=24.0, help="simulated time per run")
    ap.add_argument("--interval", type=float, default=10.0, help="seconds per step (the sample interval)")
    args = ap.parse_args(argv)
    site = load_site(args.site)
    steps = max(1, int(args.hours * 3600 / args.interval))
    physics_s, _ = _run(site, steps, args.interval, readings=False)
    full_s, values = _run(site, steps, args.interval, readings=True)
    accels = Simulator(site, seed=0).inventory.n_accel
    per_day = 86400 / (steps * args.interval)
    print(f"{args.site.name}: {accels} accelerators, {steps} steps of {args.interval:g} s")
    print(f"physics only        {physics_s:.2f} CPU s  ({physics_s * per_day:.1f} s per simulated day)")
    print(f"with readings       {full_s:.2f} CPU s  ({full_s * per_day:.1f} s per simulated day), {values:,} values")
    report({"bench": "sim", "site": args.site.name, "accelerators": accels, "steps": steps,
            "interval_s": args.interval,
            "physics_cpu_s_per_sim_day": round(physics_s * per_day, 2),
            "with_readings_cpu_s_per_sim_day": round(full_s * per_day, 2),
            "readings_over_physics": round(full_s / physics_s, 2) if physics_s else None,
            "values": values, "target_cpu_s_per_sim_day": 60.0,
            "meets_target": full_s * per_day < 60.0, "peak_rss_mb": round(peak_rss_mb(), 1)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
