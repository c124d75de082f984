"""Each dcops process's own metrics (Prometheus `/metrics`) and health (`/healthz`).

One `Metrics` per process: a prometheus-client registry (injectable, so tests and embedded
runs keep theirs apart), the instruments every stage uses *by name* (declared once, as data,
in `INSTRUMENTS`), and `HealthChecks`, the named checks `/healthz` reports. The role runner
(`dcops role`, `dcops up`) builds it, installs it as the process's `current()` and serves it
(`serve(metrics, host, port)`); stage code asks for what it needs:

    from dcops.metrics import current
    m = current()
    m.get("samples_in").labels(stage="analytics").inc(batch.n_values)     # counters
    m.get("outbox_depth").labels(outbox="webhooks").set_function(outbox.depth)  # gauges read at scrape
    with m.get("scoring_seconds").labels(detector="thermal").time(): ...  # histograms
    m.health.add("store", lambda: Check(store_ok, "last write 2s ago"))  # /healthz

A stage with a metric of its own declares it in one line (`m.declare(Instrument(...))`) and
then uses it by name like the shared ones.

The first scrape is already complete: `register_roles()` (the role runner calls it before the
role starts) creates every instrument of the roles this process runs (`ROLE_INSTRUMENTS`, with
the series whose labels are known at start at 0), and every registry carries the process
(`process_resident_memory_bytes`, CPU seconds, open fds), platform and GC collectors and
`dcops_build_info{version, python, role}`. The server is waitress (`dcops.httpserve`).

Nothing here starts, registers or reads anything on import.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Callable, Literal, Mapping

from prometheus_client import (CollectorRegistry, Counter, Gauge, GCCollector, Histogram, Info, PlatformCollector,
                               ProcessCollector, make_wsgi_app)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from dcops.secrets import redact

__all__ = ["Check", "HealthChecks", "INSTRUMENTS", "Instrument", "Metrics", "MetricsServer", "ROLE_INSTRUMENTS",
           "current", "install", "observe_lag", "serve"]

log = logging.getLogger(__name__)

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True)
class Instrument:
    """One metric a stage may use, by `name`; `metric` is what Prometheus sees."""

    name: str
    metric: str
    kind: Literal["counter", "gauge", "histogram"]
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = _LATENCY_BUCKETS

    def __post_init__(self) -> None:
        if self.kind == "counter" and not self.metric.endswith("_total"):
            raise ValueError(f"instrument {self.name}: counter names end in _total ({self.metric})")
        if self.kind != "counter" and self.metric.endswith("_total"):
            raise ValueError(f"instrument {self.name}: only counters end in _total ({self.metric})")


_SHARED = (
    # data flowing through a stage (unit: sample values, as `Batch.n_values` counts them)
    Instrument("samples_in", "dcops_samples_in_total", "counter",
               "Sample values this stage received (decoded from the bus or read from a device)", ("stage",)),
    Instrument("samples_out", "dcops_samples_out_total", "counter",
               "Sample values this stage wrote to the store or published to the bus", ("stage",)),
    Instrument("events_in", "dcops_events_in_total", "counter", "Events this stage received", ("stage",)),
    Instrument("messages_in", "dcops_bus_messages_in_total", "counter", "Bus messages consumed",
               ("stage", "topic")),
    Instrument("dead_letters", "dcops_dead_letters_total", "counter",
               "Messages sent to the dead-letter topic (undecodable or refused by the store)", ("stage",)),
    Instrument("consumer_lag", "dcops_consumer_lag_messages", "gauge",
               "Messages on the bus this consumer group has not processed yet, per partition",
               ("group", "topic", "partition")),
    # store
    Instrument("store_write_seconds", "dcops_store_write_seconds", "histogram",
               "Time for one bulk write to the telemetry store to be acknowledged", ("stage",)),
    Instrument("store_errors", "dcops_store_errors_total", "counter",
               "Store writes that failed and were retried (store unavailable)", ("stage",)),
    # collectors
    Instrument("polls", "dcops_polls_total", "counter", "Device polls or scrapes attempted", ("collector",)),
    Instrument("poll_errors", "dcops_poll_errors_total", "counter",
               "Device polls or scrapes that failed (timeout, refused, unparseable)", ("collector",)),
    Instrument("poll_seconds", "dcops_poll_seconds", "histogram", "Duration of one device poll or scrape",
               ("collector",)),
    # analytics
    Instrument("scoring_seconds", "dcops_scoring_seconds", "histogram",
               "Time to score one window of samples with one detector", ("detector",)),
    Instrument("findings_out", "dcops_findings_out_total", "counter", "Findings published", ("detector",)),
    # alerts
    Instrument("alarms_raised", "dcops_alarms_raised_total", "counter", "Alarms raised", ("severity",)),
    Instrument("outbox_depth", "dcops_outbox_depth", "gauge",
               "Notifications written to the durable outbox and not yet delivered", ("outbox",)),
    Instrument("notifications", "dcops_notifications_total", "counter", "Notification delivery attempts",
               ("notifier", "outcome")),
    Instrument("inbound_alerts", "dcops_inbound_alerts_total", "counter",
               "Alertmanager alerts received on the inbound webhook, by outcome (accepted, refused)", ("outcome",)),
    # bus producer and its spool
    Instrument("bus_messages", "dcops_bus_messages_total", "counter",
               "Producer messages by outcome (sent, acked, failed, spooled, replayed, lost)", ("client", "outcome")),
    Instrument("spool_depth", "dcops_bus_spool_depth", "gauge",
               "Messages waiting in the producer's on-disk spool for the broker", ("client",)),
    Instrument("spool_bytes", "dcops_bus_spool_bytes", "gauge", "Bytes held by the producer's on-disk spool",
               ("client",)),
)
INSTRUMENTS: Mapping[str, Instrument] = MappingProxyType({i.name: i for i in _SHARED})

# What each role exports from its first scrape: (instrument, label values known at start or None
# for the family alone). Instruments a role exports through `observe()` (alarms_raised,
# outbox_depth, notifications, bus_messages, spool_*) appear when the role registers them at start.
ROLE_INSTRUMENTS: Mapping[str, tuple[tuple[str, Mapping[str, str] | None], ...]] = MappingProxyType({
    "poller": (("polls", {"collector": "snmp"}), ("poll_errors", {"collector": "snmp"}),
               ("poll_seconds", {"collector": "snmp"})),
    "traps": (("events_in", None),),
    "agent": (),
    "ingest": tuple((n, {"stage": "ingest"}) for n in ("samples_in", "samples_out", "events_in", "dead_letters",
                                                       "store_errors", "store_write_seconds"))
    + (("messages_in", None), ("consumer_lag", None)),
    "analytics": (("scoring_seconds", {"detector": "fleet"}), ("findings_out", None), ("consumer_lag", None)),
    "alerter": (("messages_in", {"stage": "alerter", "topic": "all"}), ("dead_letters", {"stage": "alerter"}),
                ("inbound_alerts", {"outcome": "accepted"}), ("inbound_alerts", {"outcome": "refused"})),
    "console": (),
})

_FACTORIES = {"counter": Counter, "gauge": Gauge, "histogram": Histogram}
_FAMILIES = {"counter": CounterMetricFamily, "gauge": GaugeMetricFamily}
Source = Callable[[], Mapping[tuple[str, ...], float]]


class _Observed:
    """A prometheus-client Collector for values a component keeps itself, read at scrape time."""

    def __init__(self, spec: Instrument) -> None:
        self.spec = spec
        self.sources: dict[int, Source] = {}
        self._lock = threading.Lock()

    def collect(self):
        spec = self.spec
        name = spec.metric[: -len("_total")] if spec.kind == "counter" else spec.metric
        fam = _FAMILIES[spec.kind](name, spec.help, labels=list(spec.labels))
        with self._lock:
            sources = list(self.sources.values())
        for fn in sources:
            try:
                values = fn()
            except Exception:  # one broken source must not break the whole scrape
                log.exception("metrics source for %s failed", spec.metric)
                continue
            for labels, value in values.items():
                fam.add_metric([str(v) for v in labels], float(value))
        yield fam


@dataclass(frozen=True)
class Check:
    """One health check's answer."""

    ok: bool
    detail: str = ""


class HealthChecks:
    """Named checks, run when `/healthz` is asked; an exception counts as failing (with its text)."""

    def __init__(self) -> None:
        self._checks: dict[str, Callable[[], Check | bool]] = {}
        self._lock = threading.Lock()

    def add(self, name: str, fn: Callable[[], Check | bool]) -> None:
        with self._lock:
            self._checks[name] = fn

    def remove(self, name: str) -> None:
        with self._lock:
            self._checks.pop(name, None)

    def names(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(self._checks)

    def report(self) -> tuple[bool, dict]:
        """(all ok, JSON-able body: status and each check's ok/detail)."""
        with self._lock:
            checks = dict(self._checks)
        out = {}
        for name, fn in checks.items():
            try:
                res = fn()
                res = res if isinstance(res, Check) else Check(bool(res))
            except Exception as exc:  # a check that raises is a failing check, said plainly
                res = Check(False, f"{type(exc).__name__}: {exc}")
            out[name] = {"ok": res.ok, "detail": redact(res.detail)}  # details quote errors: mask credentials
        ok = all(c["ok"] for c in out.values())
        return ok, {"status": "ok" if ok else "failing", "checks": out}


@dataclass
class Metrics:
    """A process's registry, its instruments by name, and its health checks."""

    role: str = ""
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    health: HealthChecks = field(default_factory=HealthChecks)
    started: float = field(default_factory=time.time)
    process_collectors: bool = True

    def __post_init__(self) -> None:
        self._declared: dict[str, Instrument] = dict(INSTRUMENTS)
        self._made: dict[str, object] = {}
        self._lock = threading.Lock()
        self._lag_seen: dict[str, set[tuple[str, str]]] = {}  # group -> partitions reported last time
        if self.process_collectors:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)
        import platform

        from dcops import __version__
        Info("dcops_build", "dcops version, Python version and the role(s) of this process",
             registry=self.registry).info({"version": __version__, "python": platform.python_version(),
                                           "role": self.role or "-"})
        if self.role in ROLE_INSTRUMENTS:
            self.register_roles((self.role,))

    def register_roles(self, roles) -> None:
        """Create the instruments of `roles` now (`ROLE_INSTRUMENTS`), so the first scrape shows them all."""
        for role in roles:
            for name, labels in ROLE_INSTRUMENTS.get(role, ()):
                metric = self.get(name)
                if labels:
                    metric.labels(**labels)

    def declare(self, instrument: Instrument) -> Instrument:
        """Add a stage's own instrument (idempotent for an identical declaration)."""
        with self._lock:
            have = self._declared.get(instrument.name)
            if have is not None and have != instrument:
                raise ValueError(f"instrument {instrument.name!r} is already declared differently: {have}")
            self._declared[instrument.name] = instrument
        return instrument

    def get(self, name: str):
        """The prometheus-client metric for instrument `name` (created in this registry on first use)."""
        with self._lock:
            made = self._made.get(name)
            if isinstance(made, _Observed):
                raise ValueError(f"instrument {name!r} is exported through observe(); it cannot also be set directly")
            if made is not None:
                return made
            spec = self._declared.get(name)
            if spec is None:
                raise KeyError(f"no instrument {name!r}; declared: {', '.join(sorted(self._declared))}")
            kw = {"buckets": spec.buckets} if spec.kind == "histogram" else {}
            made = _FACTORIES[spec.kind](spec.metric, spec.help, list(spec.labels), registry=self.registry, **kw)
            self._made[name] = made
            return made

    def observe(self, name: str, source: Source) -> Callable[[], None]:
        """Export values a component keeps itself ({label values: value}, read at every scrape).

        For counters and gauges only; returns a function that stops exporting this source.
        """
        with self._lock:
            spec = self._declared.get(name)
            if spec is None or spec.kind == "histogram":
                raise KeyError(f"no counter or gauge instrument {name!r} to observe")
            obs = self._made.get(name)
            if obs is None:
                obs = self._made[name] = _Observed(spec)
                self.registry.register(obs)
            if not isinstance(obs, _Observed):
                raise ValueError(f"instrument {name!r} is already used directly; observe() needs its own")
        key = id(source)
        with obs._lock:
            obs.sources[key] = source

        def remove() -> None:
            with obs._lock:
                obs.sources.pop(key, None)

        return remove

    def value(self, name: str, **labels) -> float | None:
        """Current value of a counter/gauge sample (tests, status lines); None if never set."""
        spec = self._declared.get(name)
        if spec is None:
            return None
        sample = spec.metric if spec.kind != "histogram" else spec.metric + "_count"
        return self.registry.get_sample_value(sample, labels)


_current_lock = threading.Lock()
_current: list[Metrics] = []


def install(metrics: Metrics) -> Metrics:
    """Make `metrics` this process's metrics (the role runner does this before starting roles)."""
    with _current_lock:
        _current[:] = [metrics]
    return metrics


def current() -> Metrics:
    """This process's metrics; an unserved one is created on first use if no runner installed one."""
    with _current_lock:
        if not _current:
            _current.append(Metrics())
        return _current[0]


def observe_lag(metrics: Metrics, group: str, consumer) -> None:
    """Copy a consumer's lag ({(topic, partition): messages}, if it reports one) into `consumer_lag`.

    Partitions the consumer no longer reports (given to another group member) are dropped, so
    two workers never both show lag for one partition.
    """
    lag_fn = getattr(consumer, "lag", None)
    if lag_fn is None:
        return
    gauge = metrics.get("consumer_lag")
    seen = set()
    for (topic, partition), n in lag_fn().items():
        gauge.labels(group=group, topic=topic, partition=str(partition)).set(n)
        seen.add((topic, str(partition)))
    for topic, partition in metrics._lag_seen.get(group, set()) - seen:
        gauge.remove(group, topic, partition)
    metrics._lag_seen[group] = seen


# ----- HTTP ---------------------------------------------------------------------------------
def wsgi_app(metrics: Metrics):
    """`/metrics` (Prometheus text format) and `/healthz` (JSON; 200 when every check passes, else 503)."""
    prom = make_wsgi_app(metrics.registry)

    def app(environ, start_response):
        path = environ.get("PATH_INFO", "/")
        if path == "/healthz":
            ok, body = metrics.health.report()
            body = {"role": metrics.role, "uptime_s": round(time.time() - metrics.started, 1), **body}
            data = json.dumps(body, sort_keys=True).encode()
            start_response("200 OK" if ok else "503 Service Unavailable",
                           [("Content-Type", "application/json"), ("Content-Length", str(len(data))),
                            ("Cache-Control", "no-store")])
            return [data]
        if path == "/metrics":
            return prom(environ, start_response)
        data = b"dcops metrics: /metrics (Prometheus) and /healthz (JSON)\n"
        start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))])
        return [data]

    return app


class MetricsServer:
    """The HTTP server of one process; `port` is the bound one (useful with port 0)."""

    def __init__(self, metrics: Metrics, host: str, port: int) -> None:
        from dcops.httpserve import WsgiServer

        self._server = WsgiServer(wsgi_app(metrics), host, port, name="metrics-http", threads=2, max_body=1 << 16)
        self.host = host
        self.port = self._server.port

    def start(self) -> "MetricsServer":
        self._server.start()
        return self

    @property
    def url(self) -> str:
        return self._server.url

    def close(self) -> None:
        self._server.close()


def serve(metrics: Metrics, host: str, port: int) -> MetricsServer | None:
    """Start serving `metrics`; None (after logging why) if the address cannot be bound.

    A process whose metrics port is taken keeps running its role: losing the metrics endpoint
    is logged as an error, never turned into an outage of the stage itself.
    """
    try:
        return MetricsServer(metrics, host, port).start()
    except (OSError, OverflowError) as exc:
        log.error("metrics: cannot listen on %s:%d (%s); this process serves no /metrics or /healthz"
                  " (set settings.metrics.port or --metrics-port)", host, port, getattr(exc, "strerror", None) or exc)
        return None
