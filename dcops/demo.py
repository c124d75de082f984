"""The demo runtime: the simulated site end to end in one process.

    simulator --(GPU/NPU agents, sim collector)--> in-process bus --> ingest --> DuckDB
                                                 \\-> analytics, alerts (when wired)
    console (Dash) reads the store

The simulator's clock follows the wall clock (times `speed`), so the console shows "now".
Everything runs in threads of this process and stops cleanly on `stop()`.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from dcops.bus import InProcessBus
from dcops.ingest import IngestWorker
from dcops.sim import Simulator
from dcops.simcollector import SimCollector
from dcops.site import SiteConfig
from dcops.store.duckdb_store import DuckDBStore

__all__ = ["Demo", "DemoOptions", "DEFAULT_FAULTS"]

log = logging.getLogger("dcops.demo")
NS = 1_000_000_000

NON_AGENT_MEASUREMENTS = ("server", "rack", "site", "pdu", "ups", "cooling", "env")

# Faults injected shortly after start, so a newcomer sees alarms and an incident at once.
DEFAULT_FAULTS: tuple[tuple[float, str, str], ...] = (
    (15.0, "crac_failure", "CRAC-H1-1"),
    (20.0, "gpu_xid79", "H1-R3-05-S04:6"),
    (25.0, "npu_thermal_throttle", "H2-R1-03-S02:1"),
    (30.0, "psu_failure", "H2-R4-06-S07"),
)


@dataclass
class DemoOptions:
    data_dir: Path = Path("var/demo")
    interval_s: float = 10.0
    speed: float = 1.0
    seed: int = 1
    host: str = "127.0.0.1"
    port: int = 8050
    faults: tuple[tuple[float, str, str], ...] = DEFAULT_FAULTS
    console: bool = True


@dataclass
class DemoStats:
    started: float = field(default_factory=time.monotonic)
    steps: int = 0
    values: int = 0


class Demo:
    def __init__(self, cfg: SiteConfig, options: DemoOptions, say: Callable[[str], None] = print) -> None:
        self.cfg = cfg
        self.opt = options
        self.say = say
        self.opt.data_dir.mkdir(parents=True, exist_ok=True)
        step_ns = int(options.interval_s * NS)
        self.sim = Simulator(cfg, seed=options.seed, start_ns=(time.time_ns() // step_ns) * step_ns,
                             interval_s=options.interval_s)
        self.bus = InProcessBus()
        self.store_path = self.opt.data_dir / "telemetry.duckdb"
        self.store = DuckDBStore(self.store_path, retention_days=cfg.settings.store.retention_days)
        self.ingest = IngestWorker(self.bus, self.store, max_records=500)
        # Accelerators are read by per-host agents (the NVML code path over the simulator-backed
        # stand-in, rbln-stat JSON for NPUs); the rest of the site by the simulator collector.
        from collectors.sim_agents import SimAgents, agent_covers

        self.agents = SimAgents(self.sim, self.bus)
        self.collector = SimCollector(self.sim, self.bus, measurements=NON_AGENT_MEASUREMENTS, skip_event=agent_covers)
        self.stats = DemoStats()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()  # guards the simulator between the tick thread and injections
        self._pending = sorted(options.faults)
        self._server = None
        self.credentials: dict[str, str] = {}

    # ----- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        inv = self.sim.inventory
        self.say(f"dcops demo: site {inv.site!r}: {len(inv.racks)} racks, {len(inv.servers)} servers, "
                 f"{inv.n_accel} accelerators, {len(inv.of_kind('ups'))} UPSes, {len(inv.of_kind('pdu'))} PDUs, "
                 f"{len(inv.of_kind('cooling'))} cooling units")
        self.say(f"telemetry store: DuckDB at {self.store_path.resolve()}  (bus: in-process)")
        self._tick()  # one reading in the store before the console opens
        self.ingest.drain(idle_polls=1)
        self._spawn("ingest", self.ingest.run)
        self._spawn("simulator", self._run_sim)
        from dcops.demo_control import ControlServer

        self._control = ControlServer(self.opt.data_dir, self.inject, lambda: list(self.sim.labels))
        self._control.start()
        if self.opt.console:
            self._start_console()
        for at, kind, target in self._pending:
            self.say(f"fault scheduled in {at:.0f}s: {kind} on {target}")

    def _spawn(self, name: str, fn) -> None:
        t = threading.Thread(target=fn, name=f"dcops-{name}", daemon=True)
        t.start()
        self._threads.append(t)

    def _start_console(self) -> None:
        from console.app import create_app, serve
        from console.auth import Auth
        from console.users import UserStore, bootstrap_users

        # Fresh demo accounts with new random passwords on every start, printed below.
        users_db = self.opt.data_dir / "console-users.sqlite"
        users_db.unlink(missing_ok=True)
        users = UserStore.from_url(f"sqlite:///{users_db.resolve()}")
        self.credentials = bootstrap_users(users)
        auth = Auth(users, session_ttl_s=self.cfg.settings.console.session_ttl_s)
        app = create_app(self.store, self.sim.inventory, auth=auth, refresh_s=min(self.opt.interval_s, 5.0),
                         energy_price_per_kwh=self.cfg.energy_price_per_kwh)
        self._server = serve(app, self.opt.host, self.opt.port)
        self._spawn("console", self._server.run)
        self.say(f"console: http://{self.opt.host}:{self.opt.port}/")
        for user, password in self.credentials.items():
            self.say(f"  login {user:9s} password {password}")

    def stop(self, drain_timeout_s: float = 30.0) -> None:
        """Stop producing, let ingest store everything already on the bus, then stop the rest."""
        self._stop.set()
        for t in self._threads:
            if t.name == "dcops-simulator":
                t.join(timeout=10)
        deadline = time.monotonic() + drain_timeout_s
        while self.bus.lag("samples", "ingest") + self.bus.lag("events", "ingest") and time.monotonic() < deadline:
            time.sleep(0.05)
        self.ingest.stop()
        if getattr(self, "_control", None) is not None:
            self._control.stop()
        if self._server is not None:
            self._server.close()
        for t in self._threads:
            t.join(timeout=10)
        self.bus.close()
        self.store.close()

    # ----- the clock ------------------------------------------------------------------------
    def _tick(self) -> None:
        with self._lock:
            self.sim.step()
            self.stats.values += self.agents.collect()
            self.stats.values += self.collector.collect()
            self.stats.steps += 1

    def _run_sim(self) -> None:
        period = self.opt.interval_s / self.opt.speed
        t0 = time.monotonic()
        next_at = t0 + period
        while not self._stop.wait(max(0.0, next_at - time.monotonic())):
            next_at += period
            elapsed = time.monotonic() - t0
            while self._pending and self._pending[0][0] <= elapsed:
                _, kind, target = self._pending.pop(0)
                self.inject(kind, target)
            try:
                self._tick()
            except Exception:  # never let one bad step stop the demo
                log.exception("simulator step failed")

    def inject(self, kind: str, target: str, duration_s: float | None = -1.0):
        with self._lock:
            label = self.sim.inject(kind, target, duration_s=duration_s)
        self.say(f"injected {label.fault_type} on {label.target} ({label.fault_id}; affects {len(label.affected)} components)")
        return label

    def status_line(self) -> str:
        el = max(time.monotonic() - self.stats.started, 1e-9)
        return (f"[{time.strftime('%H:%M:%S')}] steps {self.stats.steps}, {self.stats.values / el:,.0f} samples/s, "
                f"stored {self.ingest.stats.values:,} values, {self.ingest.stats.events} events, "
                f"bus lag {self.bus.lag('samples', 'ingest')}, active faults {len(self.sim.active_faults())}")

    def wait(self, status_every_s: float = 30.0) -> None:
        """Block until stop() or Ctrl-C, printing a status line now and then."""
        while not self._stop.wait(status_every_s):
            self.say(self.status_line())
