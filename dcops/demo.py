"""The demo runtime: the simulated site end to end in one process.

    simulator --(GPU/NPU agents, sim collector)--> in-process bus --> ingest --> DuckDB
                                                 |-> analytics --(findings)--> bus
                                                 \\-> alerter: rules, correlation, incidents, outbox --> pager
    console (Dash) reads the store and the alarm/incident repository, drives runbooks

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

__all__ = ["Demo", "DemoOptions", "DEFAULT_FAULTS", "site_faults"]

log = logging.getLogger("dcops.demo")
NS = 1_000_000_000

SIM_ONLY_MEASUREMENTS = ("server", "rack", "site")
SNMP_MEASUREMENTS = ("pdu", "ups", "cooling", "env")
# events the simulated SNMP devices send as traps (the trap receiver publishes them)
TRAP_EVENTS = frozenset({"ups_on_battery", "ups_on_utility", "breaker_trip", "breaker_closed",
                         "cooling_fault", "cooling_recovered"})

# Faults injected shortly after start, so a newcomer sees alarms and an incident at once.
DEFAULT_FAULTS: tuple[tuple[float, str, str], ...] = (
    (15.0, "crac_failure", "CRAC-H1-1"),
    (20.0, "gpu_xid79", "H1-R3-05-S04:6"),
    (25.0, "npu_thermal_throttle", "H2-R1-03-S02:1"),
    (30.0, "psu_failure", "H2-R4-06-S07"),
)


def site_faults(inventory, faults=DEFAULT_FAULTS) -> tuple[tuple[float, str, str], ...]:
    """`faults` made to fit this site: a target the site has is kept; one it lacks is replaced by
    the site's first component the fault type applies to (kind and vendor); a fault type with
    nothing to act on in the site is left out."""
    from dcops.sim import FAULT_TYPES

    def fits(comp, ft) -> bool:
        return comp.kind in ft.target_kinds and (not ft.vendor or comp.attrs.get("vendor") == ft.vendor)

    out = []
    for at, kind, target in faults:
        ft = FAULT_TYPES[kind]
        if target in inventory and fits(inventory.get(target), ft):
            out.append((at, kind, target))
            continue
        pick = next((c.name for k in ft.target_kinds for c in inventory.of_kind(k) if fits(c, ft)), None)
        if pick is not None:
            out.append((at, kind, pick))
    return tuple(out)


@dataclass
class DemoOptions:
    data_dir: Path = Path("var/demo")
    interval_s: float = 10.0
    speed: float = 1.0
    seed: int = 1
    host: str = "127.0.0.1"
    port: int = 8050
    faults: tuple[tuple[float, str, str], ...] | None = None  # None: DEFAULT_FAULTS fitted to the site
    console: bool = True
    snmp: bool = True
    alerts: bool = True
    analytics: bool = True
    history: bool = True  # a few weeks of past incidents (dcops.evaluation.demo_history), cached under data_dir


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
        from dcops.collectors.sim_agents import SimAgents, agent_covers

        self.agents = SimAgents(self.sim, self.bus)
        # PDUs, UPSes, cooling units and environment probes are polled over real SNMP (and send
        # traps) when `snmp` is on; servers, racks and site totals come from the sim collector.
        measurements = SIM_ONLY_MEASUREMENTS if options.snmp else SIM_ONLY_MEASUREMENTS + SNMP_MEASUREMENTS
        # Servers' PSUs and fans are read from their BMCs over Redfish (the collector's code over the
        # simulated resource trees): PSU and fan faults arrive from there, not from the simulator.
        from dcops.collectors.redfish_client import BmcTarget
        from dcops.collectors.redfish_poller import RedfishPoller
        from dcops.collectors.redfish_sim import sim_connect

        self.bmcs = RedfishPoller([BmcTarget(s, "https://bmc.sim") for s in self.sim.server_names], self.sim.inventory,
                                  max_workers=1, clock=lambda: self.sim.now_ns, connect=sim_connect(self.sim),
                                  monotonic=lambda: self.sim.now_ns / 1e9)  # backoff of dead BMCs in simulated time
        bmc_kinds = {"psu_fault", "psu_recovered", "fan_fault", "fan_recovered"}
        skip = ((lambda e: agent_covers(e) or e.kind in TRAP_EVENTS or e.kind in bmc_kinds) if options.snmp
                else (lambda e: agent_covers(e) or e.kind in bmc_kinds))
        self.collector = SimCollector(self.sim, self.bus, measurements=measurements, skip_event=skip)
        self._stop_snmp_agents = None
        self.stats = DemoStats()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()  # guards the simulator between the tick thread and injections
        self._pending = sorted(site_faults(self.sim.inventory) if options.faults is None else options.faults)
        self.failures: list[tuple[str, BaseException]] = []  # (thread, exception) of every thread that died
        self._server = None
        self.credentials: dict[str, str] = {}
        # alarms, incidents, runbook runs, audit log and console accounts: one SQLite file, fresh per run
        self.db_path = (self.opt.data_dir / "alerts.sqlite").resolve()
        self.alerts_db_url = f"sqlite:///{self.db_path}"
        self._engines: list = []  # disposed on stop: no connection (nor WAL file) outlives the demo
        self.alerter = None
        self.alerting = None
        self.repository = None
        self.runbooks = None

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
        from dcops.store.rollups import Housekeeping

        self.housekeeping = Housekeeping(self.store).start()  # rollups and retention, every minute
        if self.opt.alerts or self.opt.console:
            self._prepare_database()
        from dcops.demo_control import ControlServer

        self._control = ControlServer(self.opt.data_dir, self.inject, lambda: list(self.sim.labels))
        self._control.start()
        self._start_power_api()
        if self.opt.snmp:
            self._start_snmp()
        if self.opt.alerts:
            self._start_alerts()
        if self.opt.analytics:
            self._start_analytics()
        self._spawn("simulator", self._run_sim)
        if self.opt.console:
            self._start_console()
        for at, kind, target in self._pending:
            self.say(f"fault scheduled in {at:.0f}s: {kind} on {target}")

    def _spawn(self, name: str, fn) -> None:
        def target():
            try:
                fn()
            except BaseException as exc:  # the command reports it and exits non-zero
                log.exception("demo thread %s failed", name)
                self.failures.append((name, exc))
                self._stop.set()

        t = threading.Thread(target=target, name=f"dcops-{name}", daemon=True)
        t.start()
        self._threads.append(t)

    def _prepare_database(self) -> None:
        """A fresh database per run, created by the Alembic migrations (no `create_all`), with the
        site's generated history of past incidents in it."""
        from dcops.dbschema import upgrade

        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.db_path}{suffix}").unlink(missing_ok=True)
        upgrade(self.alerts_db_url)
        if self.opt.history:
            from dcops.evaluation.demo_history import HistoryOptions, load_history

            t0 = time.monotonic()
            n = load_history(self.cfg, self.alerts_db_url, self.opt.data_dir / "history", self.sim.now_ns,
                             HistoryOptions(seed=self.opt.seed))
            self.say(f"history: {n} past incidents of the fault library over the last weeks "
                     f"(operator response times synthetic), ready in {time.monotonic() - t0:.1f} s")

    def _start_snmp(self) -> None:
        """The simulated facility devices answer SNMP on loopback; the real poller and trap receiver read them."""
        import socket

        from dcops.collectors.snmp_poller import run_poller
        from dcops.collectors.snmp_simagent import serve_simulator, sim_device_tags, sim_poll_targets
        from dcops.collectors.snmp_traps import TrapReceiverConfig, run_trap_receiver

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            trap_port = probe.getsockname()[1]
        view = _LockedSim(self.sim, self._lock)
        endpoints, self._stop_snmp_agents = serve_simulator(view, host="127.0.0.1", port=0,
                                                            trap_to=("127.0.0.1", trap_port))
        targets = sim_poll_targets(view, endpoints, interval_s=self.opt.interval_s / self.opt.speed)
        self._spawn("snmp-poller", lambda: run_poller(targets, self.bus, self._stop, site=self.sim.inventory.site))
        traps = TrapReceiverConfig(host="127.0.0.1", port=trap_port, devices=sim_device_tags(view, endpoints))
        self._spawn("snmp-traps", lambda: run_trap_receiver(traps, self.bus, self._stop))
        self.say(f"SNMP: {len(endpoints)} simulated PDUs/UPSes/cooling units/probes answer on 127.0.0.1 "
                 f"(ports {min(endpoints.values())}-{max(endpoints.values())}); polled every "
                 f"{self.opt.interval_s / self.opt.speed:g} s; traps to 127.0.0.1:{trap_port}")

    def _start_alerts(self) -> None:
        """Alerter (rules, correlation, incidents, outbox) paging a local receiver; runbooks."""
        from dcops.alerts.config import AlertingConfig
        from dcops.alerts.storage.repository import Repository
        from dcops.alerts.runbooks.engine import RunbookEngine
        from dcops.alerts.runbooks.executors import ExecutorConfig, ExecutorRuntime
        from dcops.alerts.runbooks.loader import load_runbooks
        from dcops.alerts.service import Alerter
        from dcops.demo_pager import DemoPager

        self.pager = DemoPager(self.say)
        self.pager.start()
        alerting = AlertingConfig.model_validate({
            "receivers": [{"name": "demo-pager", "type": "webhook", "url": self.pager.url, "secret": self.pager.secret}],
            "route": {"receiver": "demo-pager"},
            "grouping": {"group_wait_s": 20, "lookback_s": 900, "incident_min_severity": "minor"},
        })
        self.alerting = alerting
        inv = self.sim.inventory
        self.alerter = Alerter(self.bus, inv, alerting=alerting, db_url=self.alerts_db_url, time_source="data",
                               create_tables=False).start()
        self._engines.append(self.alerter.engine)
        self._threads.append(self.alerter.run_in_thread(self._stop))
        from types import SimpleNamespace

        from dcops.alerts.storage.audit import AnchorKeeper, open_audit_log
        from dcops.alerts.storage.tables import open_engine

        engine = open_engine(self.alerts_db_url, create_tables=False)
        self._engines.append(engine)
        db = self.cfg.settings.database
        audit = open_audit_log(engine, SimpleNamespace(audit_key=db.audit_key,
                                                       audit_anchor_file=str(self.opt.data_dir / "audit-anchors.jsonl")),
                               ensure_schema=False)
        self.audit = audit
        self.alerter.store.audit = audit  # the alerter's state-changing cycles go to the same chain
        self._anchors = AnchorKeeper(audit, db.audit_anchor_interval_s, source="demo").start()
        self.repository = Repository(engine, inv, audit=audit)
        executors = ExecutorRuntime(ExecutorConfig.model_validate({
            # harmless stand-ins for the site's real commands (kubectl drain, BMS calls, ...)
            "allowed_commands": {name: ["/bin/echo", f"demo: {name} done"] for name in
                                 ("notify_facilities", "uncordon", "notify_serving", "shed_load", "restore_load")},
            "drain_command": ["/bin/echo", "demo: drained", "{server}"],
            "agent_url": self.power_url,  # power caps reach the simulated GPUs through the agents' control API
            "agent_token_key": self.power_key,
            "webhook_secret": self._control.token,
        }))
        self.runbooks = RunbookEngine(engine, load_runbooks(), inventory=inv, store=self.store,
                                      executors=executors, repository=self.repository, audit=audit)
        self.say(f"alarms and incidents: SQLite at {self.alerts_db_url[len('sqlite:///'):]}; pages go to {self.pager.url}")

    def _start_analytics(self) -> None:
        from dcops.analytics.service import Analytics

        models = self.opt.data_dir / "models" / "analytics.joblib"
        self.analytics = Analytics(self.bus, self.store, self.sim.inventory, model_path=models,
                                   interval_s=self.opt.interval_s)
        self._spawn("analytics", lambda: self.analytics.run(self._stop))
        self.say(f"analytics: streaming anomaly scoring of every device each interval (models in {models.parent})")

    def _start_power_api(self) -> None:
        """The accelerator agents' power-limit control API (the code a real `dcops agent
        --control-port` serves), one URL prefix per simulated host, backed by the simulator."""
        import secrets

        from dcops.collectors.power_api import ControlApi, JsonlAudit
        from dcops.httpserve import WsgiServer

        self.power_key = secrets.token_urlsafe(24)
        audit = JsonlAudit(self.opt.data_dir / "power-audit.jsonl")
        self._power_api = ControlApi(self.agents.power_controllers(audit=audit), self.power_key.encode())
        self._power_api.start()
        self._power_server = WsgiServer(self._power_api, "127.0.0.1", 0, name="dcops-power-api").start()
        self.power_url = f"{self._power_server.url}/hosts/{{server}}"

    def _start_console(self) -> None:
        from dcops.console.app import create_app, serve
        from dcops.console.auth import Auth
        from dcops.console.users import UserStore, bootstrap_users

        # Fresh demo accounts with new random passwords on every start (a fresh database), printed below.
        users = UserStore.from_url(self.alerts_db_url, audit=getattr(self, "audit", None))
        self._engines.append(users.engine)
        self.credentials = bootstrap_users(users)
        auth = Auth(users, session_ttl_s=self.cfg.settings.console.session_ttl_s, audit_log=getattr(self, "audit", None))
        app = create_app(self.store, self.sim.inventory, alarms=self.repository, runbooks=self.runbooks,
                         alerting=self.alerting, auth=auth,
                         refresh_s=min(self.opt.interval_s, 5.0), energy_price_per_kwh=self.cfg.energy_price_per_kwh)
        self._server = serve(app, self.opt.host, self.opt.port)
        self._spawn("console", self._server.run)
        self.say(f"console: http://{self.opt.host}:{self.opt.port}/")
        for user, password in self.credentials.items():
            self.say(f"  login {user:9s} password {password}")

    def stop(self, drain_timeout_s: float = 30.0) -> list[str]:
        """Stop producing, let ingest store everything already on the bus, then stop the rest in
        order: each consumer's loop ends before what it reads from closes. Returns the names of
        threads that did not end (empty when the demo stopped cleanly)."""
        self._stop.set()
        self._join("dcops-simulator")
        deadline = time.monotonic() + drain_timeout_s
        while self.bus.lag("samples", "ingest") + self.bus.lag("events", "ingest") and time.monotonic() < deadline:
            time.sleep(0.05)
        self.ingest.stop()
        if getattr(self, "housekeeping", None) is not None:
            self.housekeeping.stop()
        if self.alerter is not None:
            self._join("dcops-alerter")  # its loop polls the bus consumers that close() closes
            self.alerter.close()
        if getattr(self, "pager", None) is not None:
            self.pager.stop()
        if self._stop_snmp_agents is not None:
            self._stop_snmp_agents()
        if getattr(self, "_control", None) is not None:
            self._control.stop()
        if getattr(self, "_power_server", None) is not None:
            self._power_api.stop()
            self._power_server.close()
        if self._server is not None:
            self._server.close()
        self.bmcs.close()
        for t in self._threads:
            t.join(timeout=10)
        if getattr(self, "_anchors", None) is not None:
            self._anchors.stop()  # the final chain head goes outside the database
        self.bus.close()
        self.store.close()
        for engine in self._engines:
            engine.dispose()  # the last connection closes: SQLite folds its WAL back into the file
        self._engines.clear()
        return [t.name for t in self._threads if t.is_alive()]

    def _join(self, name: str, timeout: float = 10.0) -> None:
        for t in self._threads:
            if t.name == name:
                t.join(timeout=timeout)

    # ----- the clock ------------------------------------------------------------------------
    def _tick(self) -> None:
        with self._lock:
            self.sim.step()
            self.stats.values += self.agents.collect()
            self.stats.values += self.collector.collect()
            self._poll_bmcs()
            self.stats.steps += 1

    def _poll_bmcs(self) -> None:
        from dcops.bus import publish_batch, publish_events

        batches, events, _ = self.bmcs.poll()
        for b in batches:
            if b.measurement == "bmc":  # the simulator's own `server` rows stay the summary
                publish_batch(self.bus, b, key=str(b.tags["rack"][0]) if len(b) else "")
                self.stats.values += b.n_values
        publish_events(self.bus, events, key="bmc")

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


class _LockedSim:
    """The simulator as other threads may read it (the SNMP agents): reads take the demo's lock."""

    def __init__(self, sim: Simulator, lock: threading.Lock) -> None:
        self._sim = sim
        self._lock = lock
        self.inventory = sim.inventory
        self.interval_s = sim.interval_s

    def batches(self):
        with self._lock:
            return self._sim.batches()

    def events_since(self, cursor: int = 0):
        with self._lock:
            return self._sim.events_since(cursor)
