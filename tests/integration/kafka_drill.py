"""A producer -> Tansu -> ingest -> InfluxDB pipeline with counted samples, for the fault drills."""

from __future__ import annotations

import threading
import time

import numpy as np

from dcops.batch import Batch
from dcops.ingest import IngestWorker
from dcops.kafka_bus import KafkaBus, publish_by_rack
from dcops.settings import BusSettings
from dcops.store.influx_store import InfluxStore
from tests.integration.datapath_fixtures import Tansu, TcpProxy, free_port

NS = 1_000_000_000
# Tansu finishes a group join only after the rebalance timeout (= max_poll_interval): keep it short.
FAST_GROUP = dict(max_poll_interval_ms=4000, session_timeout_ms=4000, heartbeat_interval_ms=500,
                  request_timeout_ms=6000)
RACKS = ("R1-01", "R1-02", "R2-01", "R2-02")
PER_RACK = 5


def step_batch(t_ns: int) -> Batch:
    n = len(RACKS) * PER_RACK
    return Batch("accel", np.full(n, t_ns, dtype=np.int64),
                 {"rack": np.repeat(np.array(RACKS, dtype=object), PER_RACK),
                  "accel": np.array([f"{r}-s1:{i}" for r in RACKS for i in range(PER_RACK)], dtype=object)},
                 {"accel_power_w": np.linspace(100, 400, n), "accel_temp_degc": np.full(n, 55.0)})


def wait_for(cond, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


class Drill:
    """Broker behind a TCP proxy, one producer bus, `n_workers` ingest workers in threads."""

    def __init__(self, tmp_path, influx_url: str, database: str, n_workers: int = 1) -> None:
        self.database = database
        self.tmp = tmp_path
        self.broker_port = free_port()
        self.proxy = TcpProxy(self.broker_port)
        self.tansu = Tansu(self.broker_port, self.proxy.port).start()
        self.settings = BusSettings(kind="kafka", bootstrap_servers=(self.tansu.bootstrap,),
                                    spool_dir=str(tmp_path / "spool"), partitions=4)
        self.bus = KafkaBus(self.settings, "poller", delivery_timeout_s=8, request_timeout_s=3, max_block_s=2,
                            keeper_interval_s=0.5)
        self.store = InfluxStore(influx_url, database, timeout_s=3, max_retries=1, write_timeout_s=10)
        self.t0 = (time.time_ns() // NS - 7200) * NS
        self.produced = 0
        self._step = 0
        self.max_spool = 0
        self._stop_producing = threading.Event()
        self._producer: threading.Thread | None = None
        self.workers = []
        self.procs = []
        for i in range(n_workers):
            self.add_worker(f"ingest-{i}")

    def add_worker(self, name: str) -> IngestWorker:
        bus = KafkaBus(self.settings, name, consumer_options=FAST_GROUP, delivery_timeout_s=8, request_timeout_s=3,
                       max_block_s=2, keeper_interval_s=0.5)
        worker = IngestWorker(bus, self.store, max_records=200, backoff_max_s=2.0)
        worker.thread = threading.Thread(target=worker.run, daemon=True, name=name)
        worker.thread.start()
        self.workers.append(worker)
        return worker

    def add_process_worker(self, name: str, database: str, influx_url: str):
        """An ingest worker in its own process (so a test can SIGKILL it)."""
        import subprocess
        import sys
        from pathlib import Path

        repo = Path(__file__).resolve().parents[2]
        proc = subprocess.Popen([sys.executable, "-m", "tests.integration.kafka_drill", self.tansu.bootstrap,
                                 influx_url, database, str(self.tmp / "spool"), name], cwd=repo)
        self.procs.append(proc)
        return proc

    def _produce(self, interval_s: float) -> None:
        while not self._stop_producing.is_set():
            publish_by_rack(self.bus, step_batch(self.t0 + self._step * NS))  # unique times: counted exactly
            self._step += 1
            self.produced += len(RACKS) * PER_RACK
            self.max_spool = max(self.max_spool, self.bus.spool_depth)
            self._stop_producing.wait(interval_s)

    def start_producing(self, interval_s: float = 0.1) -> None:
        self._stop_producing.clear()
        self._producer = threading.Thread(target=self._produce, args=(interval_s,), daemon=True)
        self._producer.start()

    def stop_producing(self) -> None:
        self._stop_producing.set()
        self._producer.join(30)

    def stored(self) -> int:
        return self.store.count("accel", "accel_power_w")

    def wait_all_stored(self, timeout_s: float = 120) -> int:
        self.bus.flush(timeout_s)
        try:
            wait_for(lambda: self.stored() >= self.produced, timeout_s, f"{self.produced} samples in the store")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; {self.stored()} stored; {self.diagnostics()}") from None
        time.sleep(1.0)  # anything more (there must not be) would show up now
        stored = self.stored()
        per_rack = {s["tags"]["rack"]: s["values"][0][1] for s in self.store.execute(
            'SELECT count("accel_power_w") FROM "raw"."accel" GROUP BY "rack"')}
        print(f"drill {self.database}: published {self.produced}, stored {stored},"
              f" per rack (published {self.produced // len(RACKS)} each) {per_rack}, producer {self.bus.stats}")
        return stored

    def diagnostics(self) -> str:
        out = [f"producer {self.bus.stats} spool {self.bus.spool_depth}"]
        for w in self.workers:
            c = w.consumer._c
            parts = sorted(tp for tp in c.assignment() if tp.topic.endswith("samples"))
            try:
                ends = c.end_offsets(parts)
                out.append(f"{w.stats} positions {[(tp.partition, c.position(tp), ends.get(tp)) for tp in parts]}")
            except Exception as exc:  # diagnostics only
                out.append(f"{w.stats} ({exc!r})")
        return "; ".join(out)

    def close(self) -> None:
        for p in self.procs:
            p.kill()
            p.wait(10)
        for w in self.workers:
            w.stop()
        for w in self.workers:
            w.thread.join(15)
            w.close()
            w.bus.close(timeout_s=2)
        self.bus.close(timeout_s=2)
        self.store.close()
        self.tansu.stop()
        self.proxy.close()


def worker_main(argv: list[str]) -> None:
    """`python -m tests.integration.kafka_drill BOOTSTRAP INFLUX_URL DB SPOOL_DIR NAME`: one ingest worker."""
    bootstrap, url, db, spool_dir, name = argv
    settings = BusSettings(kind="kafka", bootstrap_servers=(bootstrap,), spool_dir=spool_dir, partitions=4)
    bus = KafkaBus(settings, name, consumer_options=FAST_GROUP, delivery_timeout_s=8, request_timeout_s=3)
    store = InfluxStore(url, db, timeout_s=3, max_retries=1, write_timeout_s=10)
    IngestWorker(bus, store, max_records=200, backoff_max_s=2.0).run()


if __name__ == "__main__":
    import sys

    worker_main(sys.argv[1:])
