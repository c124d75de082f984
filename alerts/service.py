"""The alerter service: consumes `samples`, `events` and `findings` from the bus, evaluates
rules, correlates, opens incidents and notifies through the durable outbox.

Delivery semantics: poll -> feed the pipeline -> write the cycle (alarms, incidents,
timeline, outbox rows) in one transaction -> commit the bus offsets -> run post-commit work
(escalation scheduling). A crash anywhere before the commit replays the messages; outbox
rows are unique by idempotency key, so a replay cannot notify twice. The outbox sender (a
thread) delivers what was committed, with retries, independently of the consumer.

Use:
    alerter = Alerter(bus, inventory, alerting=load_alerting(path), db_url="sqlite:///var/alerts.sqlite")
    alerter.start(); thread = alerter.run_in_thread(stop_event)     # the demo
    run_role(site_cfg, stop_event)                                   # `dcops up` / `dcops role alerter`
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Iterable, Sequence

import httpx

from dcops.alerts.config import AlertingConfig
from dcops.alerts.notification.escalation import Escalator
from dcops.alerts.correlation.incidents import entry
from dcops.alerts.notification.notifiers import NOTIFIERS
from dcops.alerts.notification.oncall import receivers_for_target
from dcops.alerts.notification.outbox import OutboxSender
from dcops.alerts.storage.alerter_store import AlerterStore, CycleWrite
from dcops.alerts.pipeline import AlertPipeline
from dcops.alerts.rules.engine import default_rules
from dcops.alerts.alarms.signals import AlarmSignal
from dcops.alarm_types import Incident, IncidentState, TimelineKind
from dcops.bus import TOPIC_DEADLETTER, TOPIC_EVENTS, TOPIC_FINDINGS, TOPIC_SAMPLES, Bus
from dcops.codec import CodecError, decode_batch, decode_events
from dcops.findings import decode_findings
from dcops.topology import Inventory

__all__ = ["Alerter", "run_role", "build_notifiers"]

log = logging.getLogger(__name__)
_NS = 1_000_000_000
_TOPICS = (TOPIC_SAMPLES, TOPIC_EVENTS, TOPIC_FINDINGS)


def build_notifiers(cfg: AlertingConfig, client: httpx.Client) -> dict[str, object]:
    """One notifier per configured receiver (by receiver name)."""
    out = {}
    for r in cfg.receivers:
        cls = NOTIFIERS[r.type]
        conf = cls.config_model.model_validate(r.model_dump(exclude={"name", "type"}))
        out[r.name] = cls(conf, client)
    return out


class Alerter:
    def __init__(self, bus: Bus, inventory: Inventory, *, rules=None, alerting: AlertingConfig | None = None,
                 db_url: str = "sqlite:///var/dcops.sqlite", group: str = "alerter",
                 clock: Callable[[], float] = time.time, time_source: str = "wall",
                 http_client: httpx.Client | None = None, outbox: bool = True, escalation: bool = True,
                 cycle_s: float = 0.5, max_records: int = 500, reconcile_every_s: float = 1.0,
                 metrics=None, audit=None, create_tables: bool = True,
                 open_store: Callable[[], object] | None = None, new_id: Callable[[], str] | None = None,
                 domains=None) -> None:
        """`create_tables`: False in running services, whose schema Alembic made (see dcops.dbschema).
        `new_id`: alarm and incident ids (default random; the evaluation harness counts).
        `domains`: a `dcops.domains.DomainShare`: this worker raises and correlates only the alarms
        of its power domains (each worker reads every message in a group of its own)."""
        from dcops.alerts.storage.tables import open_engine

        self.bus = bus
        self.inventory = inventory
        self.cfg = alerting or AlertingConfig()
        self.engine = open_engine(db_url, create_tables=create_tables)
        self.store = AlerterStore(self.engine, audit=audit)  # audit: every state-changing cycle is recorded
        self.clock = clock
        self.time_source = time_source
        self.group = group
        self.cycle_s = cycle_s
        self.max_records = max_records
        self.reconcile_every_ns = int(reconcile_every_s * _NS)
        self._client = http_client or httpx.Client(timeout=10.0)
        self._own_client = http_client is None
        self._lock = threading.RLock()
        self.escalator = Escalator(self.engine, self.cfg, self._on_escalation, name=f"alerter:{group}") if escalation else None
        self.pipeline = AlertPipeline(
            inventory, default_rules() if rules is None else rules, self.cfg, self.store, new_id=new_id,
            on_trigger=self._schedule_escalation if escalation else None,
            on_stop_escalation=self._cancel_escalation if escalation else None,
            owns=domains.owns if domains is not None else None)
        self.sender = OutboxSender(self.store, build_notifiers(self.cfg, self._client), self.cfg.outbox, clock) if outbox else None
        self._consumers: dict = {}
        self.inbound_server = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self.processed = 0
        self.deadlettered = 0
        self.last_cycle = time.monotonic()
        self.metrics = metrics
        self._unobserve: list[Callable[[], None]] = []
        self._open_store = open_store  # read once at start: when each component last reported (staleness checks)

    # ----- lifecycle -------------------------------------------------------------------------
    def start(self) -> "Alerter":
        current = None
        if self._open_store is not None:
            from dcops.store.current import staleness_view

            current = staleness_view(self._open_store, self.pipeline.engine.absence_measurements(), self.now_ns())
        self.pipeline.load(self.now_ns(), current)
        if self.metrics is not None:
            self._export_metrics(self.metrics)
        # one consumer (and group) per topic, so a backlog of samples cannot starve events
        self._consumers = {t: self.bus.consumer(t, f"{self.group}.{t}") for t in _TOPICS}
        if self.escalator is not None:
            self.escalator.start()
        if self.cfg.inbound is not None:
            from dcops.alerts.inbound import alertmanager_app, serve
            ib = self.cfg.inbound
            app = alertmanager_app(self.submit_signals, self.inventory,
                                   token=ib.token.get_secret_value() if ib.token else None)
            self.inbound_server = serve(app, ib.host, ib.port)
            log.info("Alertmanager webhook endpoint on %s:%d", ib.host, self.inbound_server.port)
        if self.sender is not None:
            t = threading.Thread(target=self.sender.run, args=(self._stop,), name="dcops-outbox", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def close(self) -> None:
        """Stop threads and leave without committing anything unprocessed."""
        self._stop.set()
        loop = getattr(self, "_loop", None)
        if loop is not None and loop is not threading.current_thread():
            loop.join(timeout=30)  # the cycle in progress ends before its consumers close
        for undo in self._unobserve:
            undo()
        self._unobserve.clear()
        if self.inbound_server is not None:
            self.inbound_server.close()
            self.inbound_server = None
        for t in self._threads:
            t.join(timeout=10)
        self._threads.clear()
        if self.escalator is not None:
            self.escalator.shutdown()
        for c in self._consumers.values():
            c.close()
        self._consumers = {}
        if self._own_client:
            self._client.close()
        self.engine.dispose()

    def run(self, stop: threading.Event) -> None:
        if not self._consumers:
            self.start()
        while not stop.is_set() and not self._stop.is_set():
            try:
                self.process_once(timeout_s=self.cycle_s)
            except Exception:
                log.exception("alerter cycle failed; messages will be re-read")
                stop.wait(1.0)

    def run_in_thread(self, stop: threading.Event) -> threading.Thread:
        t = threading.Thread(target=self.run, args=(stop,), name="dcops-alerter", daemon=True)
        t.start()
        self._loop = t
        return t

    def _wall_ns(self) -> int:
        return int(self.clock() * _NS)

    def now_ns(self) -> int:
        wall = int(self.clock() * _NS)
        data = self.pipeline.data_now_ns if hasattr(self, "pipeline") else 0
        if self.time_source == "data" and data:
            return data
        return max(wall, data)

    # ----- the cycle -------------------------------------------------------------------------
    def process_once(self, timeout_s: float = 0.5) -> int:
        """Poll every topic, feed what came in time order, write one transaction, commit."""
        items = []
        n = 0
        for i, topic in enumerate(_TOPICS):
            msgs = self._consumers[topic].poll(timeout_s=timeout_s if i == 0 else 0.0, max_records=self.max_records)
            n += len(msgs)
            for m in msgs:
                decoded = self._decode(m)
                if decoded is not None:
                    items.append(decoded)
        items.sort(key=lambda x: x[0])
        with self._lock:
            w = CycleWrite()
            last = self.pipeline.data_now_ns
            for t, topic, value in items:
                # reconcile whenever data time moves on, so grouping and clears follow the data
                # the same way whatever the poll boundaries were
                if last and t - last >= self.reconcile_every_ns:
                    w.merge(self.pipeline.reconcile(self.now_ns()))
                self._feed(topic, value)
                last = max(last, t)
            w.merge(self.pipeline.reconcile(self.now_ns()))
            self.store.write(w, self._wall_ns())
            for c in self._consumers.values():
                c.commit()
            post = self.pipeline.take_post_commit()
        for fn in post:
            try:
                fn()
            except Exception:
                log.exception("post-commit step failed")
        self.processed += n
        self.last_cycle = time.monotonic()
        if self.metrics is not None and n:
            self.metrics.get("messages_in").labels(stage="alerter", topic="all").inc(n)
        return n

    def _decode(self, m):
        try:
            if m.topic == TOPIC_SAMPLES:
                b = decode_batch(m.value)
                return (int(b.time_ns.min()) if len(b) else 0, m.topic, b)
            if m.topic == TOPIC_EVENTS:
                ev = decode_events(m.value)
                return (min((e.time_ns for e in ev), default=0), m.topic, ev)
            if m.topic == TOPIC_FINDINGS:
                fs = decode_findings(m.value)
                return (min((int(f.time_ns) for f in fs), default=0), m.topic, fs)
        except CodecError as exc:
            log.warning("undecodable message on %s offset %s: %s (to %s)", m.topic, m.offset, exc, TOPIC_DEADLETTER)
            self.deadlettered += 1
            if self.metrics is not None:
                self.metrics.get("dead_letters").labels(stage="alerter").inc()
            self.bus.publish(TOPIC_DEADLETTER, m.key, m.value)
        return None

    def _feed(self, topic: str, value) -> None:
        if topic == TOPIC_SAMPLES:
            self.pipeline.feed_batch(value)
        elif topic == TOPIC_EVENTS:
            self.pipeline.feed_events(value)
        else:
            self.pipeline.feed_findings(value)

    def submit_signals(self, signals: Iterable[AlarmSignal]) -> None:
        """Signals from outside the bus (the Alertmanager webhook): persisted before returning."""
        with self._lock:
            self.pipeline.feed_signals(signals)
            w = self.pipeline.reconcile(self.now_ns())
            self.store.write(w, self._wall_ns())
            post = self.pipeline.take_post_commit()
        for fn in post:
            fn()

    def drain(self, timeout_s: float = 30.0, idle_rounds: int = 2) -> None:
        """Process until the bus has nothing more for us (tests and the demo)."""
        deadline = time.monotonic() + timeout_s
        idle = 0
        while time.monotonic() < deadline and idle < idle_rounds:
            idle = idle + 1 if self.process_once(timeout_s=0.05) == 0 else 0

    # ----- metrics and health ---------------------------------------------------------------
    def _export_metrics(self, m) -> None:
        """Alarms raised, outbox depth and delivery outcomes (read at scrape), and /healthz."""
        from dcops.metrics import Check

        p = self.pipeline
        self._unobserve.append(m.observe("alarms_raised", lambda: {(k,): float(v) for k, v in p.raised_by_severity.items()}))
        self._unobserve.append(m.observe("outbox_depth", lambda: {("alerts",): float(self.store.pending_count())}))
        if self.sender is not None:
            snd = self.sender
            self._unobserve.append(m.observe("notifications", lambda: {k: float(v) for k, v in snd.outcomes.items()}))

        def health(stall_s: float = 60.0) -> Check:
            idle = time.monotonic() - self.last_cycle
            if idle > stall_s:
                return Check(False, f"no cycle for {idle:.0f}s")
            return Check(True, f"{len(p.manager.alarms)} listed alarms, {len(p.incidents)} open incidents")
        m.health.add("alerter", health)
        self._unobserve.append(lambda: m.health.remove("alerter"))

    # ----- escalation ------------------------------------------------------------------------
    def _schedule_escalation(self, inc: Incident, policies: Sequence[str]) -> None:
        if self.escalator is not None:
            self.escalator.schedule(inc.id, policies, self.clock())

    def _cancel_escalation(self, incident_id: str) -> None:
        if self.escalator is not None:
            self.escalator.cancel(incident_id)

    def _on_escalation(self, incident_id: str, policy: str, round_: int, level: int) -> None:
        with self._lock:
            inc = self.pipeline.incidents.get(incident_id)
            if inc is None or inc.state is not IncidentState.OPEN:
                return
            pol = next(p for p in self.cfg.escalation_policies if p.name == policy)
            now = self.now_ns()
            root, _ = self.pipeline._members(inc)
            if root is not None and root.suppressed_by:  # silenced since it was paged: stay quiet
                w = CycleWrite()
                w.timeline.append((inc.id, entry(now, TimelineKind.SUPPRESSED, f"escalation level {round_}.{level} "
                                                 f"not sent: {', '.join(root.suppressed_by)}")))
                self.store.write(w, self._wall_ns())
                return
            targets: dict[str, str | None] = {}
            for t in pol.levels[level].targets:
                recvs, user = receivers_for_target(self.cfg, t, int(self.clock() * _NS))
                for r in recvs:
                    targets.setdefault(r, user)
            self.store.write(self.pipeline.escalate(inc, targets, f"{round_}.{level}", now), self._wall_ns())


def run_role(cfg, stop_event: threading.Event, bus: Bus | None = None, alerting_path: str | None = None) -> None:
    """`dcops up` / `dcops role alerter`: run the alerter until `stop_event` is set.

    The alerting config (receivers, routes, escalation) is read from `alerting_path`, else from
    the file named by the environment variable DCOPS_ALERTING_CONFIG; without either, alarms
    and incidents are kept but nobody is notified.

    Partitioned: DCOPS_ALERTER_DOMAINS names this worker's power domains (`H1+H2,H3`; see
    `dcops.domains.power_domains`); it then reads every message in consumer groups
    of its own and raises, correlates and restores only its domains' alarms and incidents."""
    import os

    from dcops.alerts.config import load_alerting
    from dcops.domains import domain_share
    from dcops.topology import build_inventory

    own_bus = bus is None
    if bus is None:
        from dcops.wiring import open_bus
        bus = open_bus(cfg.settings.bus, client_id="alerter")
    path = alerting_path or os.environ.get("DCOPS_ALERTING_CONFIG") or None
    from dcops.metrics import current

    from dcops.alerts.storage.audit import AnchorKeeper, open_audit_log
    from dcops.alerts.storage.tables import open_engine

    from dcops.dbschema import prepare

    db = cfg.settings.database
    prepare(db.url)  # SQLite: upgraded here; a server database behind head: SchemaBehind, saying what to run
    audit = open_audit_log(open_engine(db.url, create_tables=False), db, ensure_schema=False)
    anchors = AnchorKeeper(audit, db.audit_anchor_interval_s, source="alerter").start()
    from dcops.store import open_store

    inventory = build_inventory(cfg)
    share = domain_share(inventory, os.environ.get("DCOPS_ALERTER_DOMAINS", ""))
    alerter = Alerter(bus, inventory, alerting=load_alerting(path), db_url=db.url,
                      metrics=current(), audit=audit, create_tables=False,
                      open_store=lambda: open_store(cfg.settings.store), domains=share,
                      group="alerter" if share is None else "alerter." + ",".join(sorted(share.domains)))
    alerter.start()
    try:
        alerter.run(stop_event)
    finally:
        alerter.close()
        anchors.stop()
        if own_bus:
            bus.close()
