"""Ingest benchmark, production path: simulated site -> Kafka (Tansu) -> ingest worker -> InfluxDB.

Starts its own Tansu broker and influxd (1.x, behind the /api/v2/write route InfluxDB 1.8+ serves)
on free loopback ports. The simulator's readings for `--steps` steps are generated first (the
simulator is not what is measured). Then, in the same run:

- baseline: the same readings as line protocol, built beforehand, POSTed straight to InfluxDB over
  plain HTTP (`--concurrency` connections, `--chunk-lines` lines a request), to the same
  `/api/v2/write` endpoint the store uses (once before and once after the pipeline, into fresh
  databases; the mean is the reference) and, for reference, to 1.x's native `/write`;
- pipeline: the readings published to Kafka one message per rack (acks=all, lz4), consumed by an
  ingest worker in its own process (as `dcops role ingest` runs it) that decodes, builds line
  protocol and writes through influxdb-client, committing after each acknowledged write. Timed
  from the first publish to the last value acknowledged by InfluxDB.

    python bench/ingest_kafka.py [--accelerators 10000] [--steps 12]

Last line: one JSON object (samples/s end to end, baseline rates, ratio; target ratio >= 0.8).
"""

from __future__ import annotations

import argparse
import os
import http.client
import multiprocessing as mp
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import peak_rss_mb, report  # noqa: E402

NS = 1_000_000_000
GROUP = dict(max_poll_interval_ms=10_000, session_timeout_ms=10_000, heartbeat_interval_ms=1000)


def _post_all(port: int, path: str, bodies: list[bytes], concurrency: int) -> float:
    """POST every body over `concurrency` keep-alive connections; seconds taken."""
    queue = list(reversed(bodies))
    lock = threading.Lock()
    errors: list[str] = []

    def run():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            with lock:
                if not queue:
                    break
                body = queue.pop()
            conn.request("POST", path, body=body, headers={"Content-Type": "text/plain; charset=utf-8"})
            r = conn.getresponse()
            data = r.read()
            if r.status != 204:
                errors.append(f"{r.status} {data[:200]!r}")
        conn.close()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=run) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"baseline write refused: {errors[0]}")
    return time.perf_counter() - t0


def _worker(bootstrap: str, spool: str, url: str, db: str, chunk_lines: int, concurrency: int,
            ready, written, last_write, cpu, stop) -> None:
    """The ingest side, in its own process: KafkaBus consumer group -> IngestWorker -> InfluxStore."""
    from dcops.ingest import IngestWorker
    from dcops.kafka_bus import KafkaBus
    from dcops.settings import BusSettings
    from dcops.store.influx_store import InfluxStore

    settings = BusSettings(kind="kafka", bootstrap_servers=(bootstrap,), spool_dir=spool)
    bus = KafkaBus(settings, "bench-ingest", consumer_options=GROUP)
    store = InfluxStore(url, db, chunk_lines=chunk_lines, concurrency=concurrency)
    worker = IngestWorker(bus, store, max_records=2000)
    while not worker.consumer._c.assignment():  # joined the group: the clock may start
        worker.consumer.poll(0.5, 1)
    ready.set()
    cpu0 = time.process_time()
    while not stop.is_set():
        if worker.run_once(timeout_s=0.2):
            written.value = worker.stats.values
            last_write.value = time.time()
            cpu.value = time.process_time() - cpu0
    worker.close()
    bus.close(timeout_s=2)
    store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--accelerators", type=int, default=10_000)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--chunk-lines", type=int, default=5000)
    ap.add_argument("--concurrency", type=int, default=2)
    args = ap.parse_args()

    from dcops.kafka_bus import KafkaBus
    from dcops.settings import BusSettings
    from dcops.sim import Simulator
    from dcops.sim.sitegen import synthetic_site
    from dcops.simcollector import SimCollector
    from dcops.store.influx_store import InfluxStore
    from dcops.store.lineproto import batches_to_chunks
    from tests.integration.datapath_fixtures import Influxd, Tansu, V2WriteRoute

    start_ns = (time.time_ns() // NS - 3600 - int(args.steps * 10)) // 60 * 60 * NS  # recent: inside retention
    sim = Simulator(synthetic_site(args.accelerators), seed=1, start_ns=start_ns)
    steps = []
    for _ in range(args.steps):
        sim.step()
        steps.append(sim.batches())
    values = sum(b.n_values for batches in steps for b in batches)
    rows = sum(len(b) for batches in steps for b in batches)

    influx = Influxd().start()
    route = V2WriteRoute(influx.http_port)
    tansu = Tansu().start()
    tmp = Path(tempfile.mkdtemp(prefix="dcops-bench-kafka-"))
    ctx = mp.get_context("spawn")
    try:
        # ----- baseline: the same line protocol over plain HTTP ------------------------------
        for db in ("base_v2", "base_v1", "pipeline", "base_v2_after"):
            InfluxStore(route.url, db).close()  # database, retention policies, rollups
        t_lp = time.perf_counter()
        bodies = [c for batches in steps for c in batches_to_chunks(batches, args.chunk_lines)]
        lp_s = time.perf_counter() - t_lp
        v2_s = _post_all(route.port, "/api/v2/write?bucket=base_v2/raw&precision=ns", bodies, args.concurrency)
        v1_s = _post_all(influx.http_port, "/write?db=base_v1&rp=raw&precision=n", bodies, args.concurrency)

        # ----- pipeline: Kafka -> ingest worker process -> InfluxDB ---------------------------
        ready, stop = ctx.Event(), ctx.Event()
        written, last_write, worker_cpu = ctx.Value("q", 0), ctx.Value("d", 0.0), ctx.Value("d", 0.0)
        proc = ctx.Process(target=_worker, args=(tansu.bootstrap, str(tmp / "spool"), route.url, "pipeline",
                                                 args.chunk_lines, args.concurrency, ready, written, last_write,
                                                 worker_cpu, stop))
        proc.start()
        bus = KafkaBus(BusSettings(kind="kafka", bootstrap_servers=(tansu.bootstrap,), spool_dir=str(tmp / "spool")),
                       "bench-producer")
        if not ready.wait(120):
            raise RuntimeError("ingest worker did not join its group within 120 s")
        replay = _Replay(steps)
        collector = SimCollector(replay, bus, split_by_rack=True)
        t0, cpu0 = time.time(), time.process_time()
        for _ in steps:
            collector.collect()
            replay.next()
        bus.flush(120)
        produced_s, producer_cpu = time.time() - t0, time.process_time() - cpu0
        deadline = time.time() + 600
        while written.value < values and time.time() < deadline and proc.is_alive():
            time.sleep(0.05)
        if written.value < values:
            raise RuntimeError(f"pipeline wrote {written.value} of {values} values")
        pipe_s = last_write.value - t0
        stop.set()
        proc.join(30)
        bus.close(timeout_s=5)
        # the baseline again, after the pipeline: InfluxDB's speed drifts as it fills and compacts
        v2_after_s = _post_all(route.port, "/api/v2/write?bucket=base_v2_after/raw&precision=ns", bodies,
                               args.concurrency)
        stored = InfluxStore(route.url, "pipeline", manage_schema=False)
        stored_rows = stored.count("accel")
        stored.close()
    finally:
        tansu.stop()
        route.close()
        influx.cleanup()

    rate, v1_rate = values / pipe_s, values / v1_s
    v2_rate = values / ((v2_s + v2_after_s) / 2)  # mean of the runs before and after the pipeline
    print(f"{rate:,.0f} samples/s Kafka -> InfluxDB end to end; plain HTTP to /api/v2/write {v2_rate:,.0f}/s, "
          f"to /write {v1_rate:,.0f}/s; ratio {rate / v2_rate:.2f}")
    report({
        "bench": "ingest", "path": "kafka (sim -> Tansu -> ingest worker process -> InfluxDB 1.6 via v2 write)",
        "accelerators": sim.inventory.n_accel, "steps": args.steps, "values": values, "rows": rows,
        "accel_rows_stored": stored_rows, "samples_per_s": round(rate), "publish_s": round(produced_s, 2),
        "pipeline_s": round(pipe_s, 2), "raw_http_v2_samples_per_s": round(v2_rate),
        "raw_http_v1_samples_per_s": round(v1_rate), "line_protocol_build_samples_per_s": round(values / lp_s),
        "ratio_to_raw": round(rate / v2_rate, 3), "ratio_to_raw_v1_write": round(rate / v1_rate, 3),
        "target_ratio": 0.8, "peak_rss_mb": round(peak_rss_mb(), 1), "producer_cpu_s": round(producer_cpu, 2),
        "ingest_worker_cpu_s": round(worker_cpu.value, 2), "baseline_v2_s_before_after": [round(v2_s, 2), round(v2_after_s, 2)], "cpus": os.cpu_count(),
    })


class _Replay:
    """Looks like the simulator to `SimCollector`, replaying readings generated beforehand."""

    def __init__(self, steps) -> None:
        self._steps, self._i = steps, 0

    def batches(self):
        return self._steps[self._i]

    def next(self) -> None:
        self._i += 1

    def events_since(self, cursor):
        return [], cursor


if __name__ == "__main__":
    main()
