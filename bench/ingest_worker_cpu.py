"""What one ingest worker can take on the production path, CPU-wise (sizing in docs/deploy.md).

A simulated site's batches are encoded onto the bus as the collectors publish them; one
IngestWorker (metrics on, as in every role process) decodes them and hands them to a store that
builds InfluxDB's line-protocol request bodies exactly as `InfluxStore.write` does, then drops
them: the worker's share of the cost of writing to InfluxDB, without the network or the server
(InfluxDB's own capacity is the other bound; measure it on your hardware). Baseline in the same
run: the same frames through the same worker into DuckDB (the embedded store).

    python bench/ingest_worker_cpu.py [--accelerators 10000] [--steps 20]

Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import peak_rss_mb, report  # noqa: E402


class LineProtocolStore:
    """The CPU side of `InfluxStore.write`: request bodies built, then dropped."""

    def __init__(self, chunk_lines: int = 5000) -> None:
        self.chunk_lines = chunk_lines
        self.bytes = 0

    def write(self, batches) -> int:
        from dcops.store.lineproto import batches_to_chunks

        for body in batches_to_chunks(batches, self.chunk_lines):
            self.bytes += len(body)
        return sum(b.n_values for b in batches)

    def write_events(self, events) -> int:
        from dcops.store.lineproto import event_lines

        self.bytes += sum(len(x) for x in event_lines(events))
        return len(events)

    def close(self) -> None:
        return None


def run_path(frames, store) -> tuple[float, int]:
    """(CPU seconds, values) for one worker draining `frames` into `store`."""
    from dcops.bus import InProcessBus
    from dcops.ingest import IngestWorker
    from dcops.metrics import Metrics

    bus = InProcessBus(max_messages=len(frames) + 10)
    worker = IngestWorker(bus, store, max_records=500, metrics=Metrics(role="bench"))
    for key, value in frames:
        bus.publish("samples", key, value)
    cpu0 = time.process_time()
    worker.drain(idle_polls=1, timeout_s=0.0)
    cpu = time.process_time() - cpu0
    return cpu, worker.stats.values


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--accelerators", type=int, default=10_000)
    p.add_argument("--steps", type=int, default=20)
    args = p.parse_args()

    from dcops.codec import encode_batch
    from dcops.sim import Simulator
    from dcops.sim.sitegen import synthetic_site
    from dcops.store.duckdb_store import DuckDBStore

    sim = Simulator(synthetic_site(args.accelerators), seed=1, start_ns=1_750_000_000 * 10**9)
    frames = []
    for _ in range(args.steps):
        sim.step()
        frames += [(b.measurement, encode_batch(b)) for b in sim.batches()]

    lp = LineProtocolStore()
    lp_cpu, values = run_path(frames, lp)
    duck = DuckDBStore(Path(tempfile.mkdtemp(prefix="dcops-bench-")) / "b.duckdb")
    duck_cpu, duck_values = run_path(frames, duck)
    duck.close()
    assert duck_values == values, (duck_values, values)

    rate = values / lp_cpu
    result = {
        "bench": "ingest_worker_cpu", "accelerators": sim.inventory.n_accel, "steps": args.steps, "values": values,
        "path": "bus frames -> IngestWorker (metrics on) -> InfluxDB line-protocol bodies (dropped)",
        "samples_per_cpu_s": round(rate), "line_protocol_mb": round(lp.bytes / 1e6, 1),
        "baseline": "same frames, same worker -> DuckDB", "baseline_samples_per_cpu_s": round(duck_values / duck_cpu),
        "ratio_to_baseline": round(rate / (duck_values / duck_cpu), 3), "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    print(f"one ingest worker: {rate:,.0f} samples per CPU second building InfluxDB line protocol "
          f"({result['baseline_samples_per_cpu_s']:,} into DuckDB)")
    report(result)


if __name__ == "__main__":
    main()
