"""Ingest benchmark: a simulated site through collector, bus and store.

Embedded path (default): SimCollector -> InProcessBus (binary columnar frames) -> IngestWorker
-> DuckDBStore (idempotent upserts) and the current-state view (dcops.store.current). Baseline
in the same run: the very same batches inserted raw into a fresh DuckDB with plain bulk INSERTs
from Arrow (no encoding, no bus, no dedup, no view).

Growth: CPU per poll interval is measured for the ingest worker alone (decode, store write,
view update) and for the collector's publish, and reported per accelerator, so runs at 10,000
and 100,000 accelerators compare directly (`ingest_cpu_us_per_accel_interval`). The view's own
share is measured by applying the same batches to a fresh view.

    python bench/ingest.py [--accelerators 10000] [--steps 30]
    python bench/ingest.py --path kafka      # Kafka -> InfluxDB (see bench/ingest_kafka.py)

Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import peak_rss_mb, report  # noqa: E402


def embedded(n_accel: int, steps: int) -> dict:
    import duckdb
    import pyarrow as pa

    from dcops.bus import InProcessBus
    from dcops.ingest import IngestWorker
    from dcops.sim import Simulator
    from dcops.sim.sitegen import synthetic_site
    from dcops.simcollector import SimCollector
    from dcops.store.duckdb_store import DuckDBStore

    tmp = Path(tempfile.mkdtemp(prefix="dcops-bench-"))
    sim = Simulator(synthetic_site(n_accel), seed=1, start_ns=1_750_000_000 * 10**9)
    bus = InProcessBus()
    store = DuckDBStore(tmp / "pipeline.duckdb")
    worker = IngestWorker(bus, store, max_records=1000)
    collector = SimCollector(sim, bus)
    kept = []
    values = 0
    busy = 0.0
    cpu_ingest, cpu_collect = [], []
    for _ in range(steps):
        sim.step()
        kept.append(sim.batches())  # the same readings the collector will publish (deterministic copy below)
        t0, c0 = time.perf_counter(), time.process_time()
        values += collector.collect()
        c1 = time.process_time()
        worker.drain(idle_polls=1)
        cpu_ingest.append(time.process_time() - c1)
        cpu_collect.append(c1 - c0)
        busy += time.perf_counter() - t0
    cpu = sum(cpu_ingest) + sum(cpu_collect)
    rss = peak_rss_mb()
    rows = sum(store.count(m) for m in store.measurements())
    store.close()

    from dcops.store.current import CurrentState

    view = CurrentState()
    view_cpu = []
    for batches in kept:
        c0 = time.process_time()
        view.update(batches)
        view_cpu.append(time.process_time() - c0)

    raw = duckdb.connect(str(tmp / "raw.duckdb"))
    created = set()
    t0 = time.perf_counter()
    for batches in kept:
        for b in batches:
            cols = {"time": pa.array(b.time_ns)}
            cols.update({k: pa.array(v, pa.string()) for k, v in b.tags.items()})
            cols.update({k: pa.array(v, pa.float64(), from_pandas=True) for k, v in b.fields.items()})
            arrow_tbl = pa.table(cols)
            if b.measurement not in created:
                raw.execute(f'CREATE TABLE "{b.measurement}" AS SELECT * FROM arrow_tbl LIMIT 0')
                created.add(b.measurement)
            raw.execute(f'INSERT INTO "{b.measurement}" SELECT * FROM arrow_tbl')
    raw_s = time.perf_counter() - t0
    raw_values = sum(b.n_values for batches in kept for b in batches)
    raw.close()
    rate = values / busy
    raw_rate = raw_values / raw_s
    n = sim.inventory.n_accel
    steady = cpu_ingest[2:] or cpu_ingest  # the first polls create tables and columns
    ingest_cpu = statistics.median(steady)
    return {
        "bench": "ingest", "path": "embedded (sim collector -> in-process bus -> DuckDB)",
        "accelerators": sim.inventory.n_accel, "steps": steps, "values": values, "rows_stored": rows,
        "samples_per_s": round(rate), "pipeline_cpu_s": round(cpu, 2), "peak_rss_mb": round(rss, 1),
        "raw_duckdb_samples_per_s": round(raw_rate), "ratio_to_raw": round(rate / raw_rate, 3),
        "target_samples_per_s": 200_000, "target_peak_rss_mb": 1536,
        "interval_s": sim.interval_s, "ingest_cpu_s_per_interval": round(ingest_cpu, 4),
        "ingest_cpu_us_per_accel_interval": round(ingest_cpu / n * 1e6, 2),
        "collector_publish_cpu_s_per_interval": round(statistics.median(cpu_collect[2:] or cpu_collect), 4),
        "view_update_cpu_s_per_interval": round(statistics.median(view_cpu[2:] or view_cpu), 4),
        "ingest_cores_at_interval": round(ingest_cpu / sim.interval_s, 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--accelerators", type=int, default=10_000)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--path", choices=("embedded", "kafka"), default="embedded")
    args = ap.parse_args()
    if args.path == "kafka":
        os.execv(sys.executable, [sys.executable, str(Path(__file__).with_name("ingest_kafka.py")),
                                  "--accelerators", str(args.accelerators)])
    result = embedded(args.accelerators, args.steps)
    print(f"{result['samples_per_s']:,} samples/s through the pipeline; raw DuckDB insert "
          f"{result['raw_duckdb_samples_per_s']:,}/s; peak RSS {result['peak_rss_mb']} MB")
    report(result)


if __name__ == "__main__":
    main()
