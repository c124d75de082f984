"""Run outage scenarios through the production pipeline on simulated time.

One `OutageRun` per scenario wires what `dcops demo` wires, without threads, sockets or
sleeps, and steps it as fast as the CPU allows:

    Simulator --(per-host accelerator agents: NVML code path, rbln-stat JSON)--> in-process bus
              --(BMC Redfish poller over the simulated resource trees)--------> (PSUs, fans)
              --(sim collector: PDUs, UPSes, cooling, probes, racks, servers; operational events)
    bus --> StreamingScorer(FleetScorer)  --findings--> bus
    bus --> Alerter (rules, alarm manager, correlation, grouping, incidents, notification plan,
            outbox rows in a SQLite database; the outbox is not sent: its rows are the pages)

The alerter's clock is the simulator's (`time_source="data"`), ids come from a counter, and
the simulator is seeded, so the same seed gives the same report. Each scenario starts on a
fresh site, warms up for `warmup_s` (baselines settle; nothing it raises is counted) and then
runs its faults at `at_s` from the scenario start.
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from dcops.alarm_types import SEVERITY_RANK, PerceivedSeverity
from dcops.alerts.config import AlertingConfig
from dcops.evaluation.scenarios import ScenarioSpec
from dcops.sim.faults import FAULT_TYPES
from dcops.topology import Inventory

__all__ = ["EvalOptions", "OutageRun", "DEFAULT_ALERTING", "run_scenario"]

log = logging.getLogger(__name__)
NS = 1_000_000_000
T0_NS = 1_800_000_000 * NS  # a fixed start, so reports do not depend on the wall clock

# How the demo routes: every incident of at least minor severity to one receiver.
DEFAULT_ALERTING = {
    "receivers": [{"name": "noc", "type": "webhook", "url": "http://127.0.0.1:9/hook"}],
    "route": {"receiver": "noc"},
    "grouping": {"group_wait_s": 20, "lookback_s": 900, "incident_min_severity": "minor"},
}


@dataclass(frozen=True)
class EvalOptions:
    seed: int = 1
    interval_s: float = 10.0
    warmup_s: float = 900.0
    analytics: bool = True          # the analytics role's findings go to the alerter (as in production)
    correlation: bool = True        # False: every alarm stands alone (the baseline without correlation)
    baseline: bool = False          # also run an alerter without correlation on the same bus (report["baseline"])
    alerting: dict = field(default_factory=lambda: dict(DEFAULT_ALERTING))
    # UTC hour of the day the run starts at (the warm-up's start; the simulated load follows the
    # time of day: low before dawn, peak mid-afternoon). None: T0_NS, 08:00 UTC
    start_hour: float | None = None

    def __post_init__(self) -> None:
        if self.start_hour is not None and not 0.0 <= self.start_hour < 24.0:
            raise ValueError(f"EvalOptions.start_hour must be in [0, 24) (UTC hours), got {self.start_hour}")

    def t0_ns(self) -> int:
        if self.start_hour is None:
            return T0_NS
        day = 86_400 * NS
        return T0_NS - T0_NS % day + int(round(self.start_hour * 3600)) * NS


@dataclass
class StepCounters:
    raw_alarms: int = 0
    findings: int = 0
    steps: int = 0
    cpu_s: float = 0.0


class OutageRun:
    """The production stages on one simulated site, stepped by hand."""

    def __init__(self, site, opts: EvalOptions, db_url: str = "sqlite://") -> None:
        from dcops.bus import InProcessBus
        from dcops.collectors.redfish_client import BmcTarget
        from dcops.collectors.redfish_poller import RedfishPoller
        from dcops.collectors.redfish_sim import sim_connect
        from dcops.collectors.sim_agents import SimAgents, agent_covers
        from dcops.demo import SIM_ONLY_MEASUREMENTS, SNMP_MEASUREMENTS
        from dcops.sim import Simulator
        from dcops.simcollector import SimCollector

        self.opts = opts
        self.sim = Simulator(site, seed=opts.seed, start_ns=opts.t0_ns(), interval_s=opts.interval_s)
        self.inv: Inventory = self.sim.inventory
        self.bus = InProcessBus()
        self.agents = SimAgents(self.sim, self.bus)
        bmc_kinds = {"psu_fault", "psu_recovered", "fan_fault", "fan_recovered"}
        self.collector = SimCollector(self.sim, self.bus, measurements=SIM_ONLY_MEASUREMENTS + SNMP_MEASUREMENTS,
                                      skip_event=lambda e: agent_covers(e) or e.kind in bmc_kinds)
        self.bmcs = RedfishPoller([BmcTarget(s, "https://bmc.sim") for s in self.sim.server_names], self.inv,
                                  max_workers=1, clock=lambda: self.sim.now_ns, connect=sim_connect(self.sim),
                                  monotonic=lambda: self.sim.now_ns / NS)  # backoff of dead BMCs in simulated time
        self.scorer = None
        if opts.analytics:
            from dcops.analytics.fleet import FleetScorer
            from dcops.analytics.scorer import StreamingScorer

            self.scorer = StreamingScorer(self.bus, FleetScorer(self.inv), interval_s=opts.interval_s,
                                          clock=lambda: self.sim.now_ns / NS)
        self.alerter = self._alerter(db_url, self.opts.correlation)
        # the baseline reads the same messages through its own consumer group: same input, no correlation
        self.baseline = self._alerter("sqlite://", False, group="alerter-baseline") if opts.baseline else None
        self.counters = StepCounters()
        self.peak: dict[str, PerceivedSeverity] = {}  # incident id -> worst severity while open
        self.baseline_peak: dict[str, PerceivedSeverity] = {}

    def _alerter(self, db_url: str, correlation: bool, group: str = "alerter", domains=None):
        """`domains`: a `dcops.domains.DomainShare` for one worker of a partitioned alerter."""
        from dcops.alerts.service import Alerter

        cfg = AlertingConfig.model_validate(self.opts.alerting)
        ids = itertools.count(1)
        alerter = Alerter(self.bus, self.inv, alerting=cfg, db_url=db_url, clock=lambda: self.sim.now_ns / NS,
                          time_source="data", outbox=False, escalation=False, new_id=lambda: f"{next(ids):08d}",
                          group=group, domains=domains)
        if not correlation:
            from dcops.evaluation.baseline import disable_correlation
            disable_correlation(alerter.pipeline)
        return alerter.start()

    # ----- the clock ------------------------------------------------------------------------
    def _publish_agents(self) -> None:
        """Every host agent polls its accelerators (the NVML / rbln-stat code paths); the hosts
        of one rack go on the bus as one batch per measurement (keyed by rack, as each host's
        own message is): the same rows and events, a tenth of the messages to encode and decode."""
        from dcops.batch import concat_batches
        from dcops.bus import publish_batch, publish_events

        by_rack: dict[tuple, list] = {}
        events_of: dict[str, list] = {}
        for rack, batch, events in self.agents.poll():
            if len(batch):
                key = (rack, batch.measurement, tuple(sorted(batch.tags)), tuple(sorted(batch.fields)))
                by_rack.setdefault(key, []).append(batch)
            if events:
                events_of.setdefault(rack, []).extend(events)
        for (rack, *_), batches in by_rack.items():
            publish_batch(self.bus, batches[0] if len(batches) == 1 else concat_batches(batches), key=rack)
        for rack, events in events_of.items():
            publish_events(self.bus, events, key=rack)

    def step(self) -> None:
        from dcops.bus import publish_batch, publish_events

        t0 = time.process_time()
        self.sim.step()
        self._publish_agents()
        self.collector.collect()
        batches, events, _ = self.bmcs.poll()
        for b in batches:
            if b.measurement == "bmc":
                publish_batch(self.bus, b, key=str(b.tags["rack"][0]) if len(b) else "")
        publish_events(self.bus, events, key="bmc")
        if self.scorer is not None:
            while True:
                msgs = self.scorer.consumer.poll(0.0, 100_000)
                if not msgs:
                    break
                self.scorer.accept(msgs)
            self.counters.findings += len(self.scorer.score_ready(force=True))
            self.scorer.consumer.commit()
        for alerter, peak in ((self.alerter, self.peak), (self.baseline, self.baseline_peak)):
            if alerter is None:
                continue
            while alerter.process_once(timeout_s=0.0):
                pass
            for inc in alerter.pipeline.incidents.values():  # the worst an incident got while open
                old = peak.get(inc.id)
                if old is None or SEVERITY_RANK[inc.severity] > SEVERITY_RANK[old]:
                    peak[inc.id] = inc.severity
        self.counters.steps += 1
        self.counters.cpu_s += time.process_time() - t0

    def run_for(self, seconds: float, on_step: Callable[[], None] | None = None) -> None:
        n = int(round(seconds / self.opts.interval_s))
        for _ in range(n):
            if on_step is not None:
                on_step()
            self.step()

    def raised(self, alerter=None) -> int:
        return sum((alerter or self.alerter).pipeline.raised_by_severity.values())

    def close(self) -> None:
        if self.scorer is not None:
            self.scorer.close()
        self.alerter.close()
        if self.baseline is not None:
            self.baseline.close()
        self.bmcs.close()
        self.bus.close()


def run_scenario(site, sc: ScenarioSpec, opts: EvalOptions, runbooks=None) -> dict:
    """Warm up, inject the scenario's faults on time, run to its end; the report entry."""
    from dcops.evaluation.report import scenario_report

    run = OutageRun(site, opts)
    try:
        run.run_for(opts.warmup_s)
        start_ns = run.sim.now_ns
        raised0 = run.raised()
        base0 = run.raised(run.baseline) if run.baseline is not None else 0
        pending = list(sc.faults)
        labels = []

        def inject_due() -> None:
            elapsed = (run.sim.now_ns - start_ns) / NS
            while pending and pending[0].at_s <= elapsed + 1e-9:
                f = pending.pop(0)
                labels.append((f, run.sim.inject(f.fault, f.target, duration_s=f.duration_s)))

        run.run_for(sc.duration_s, on_step=inject_due)
        inject_due()
        entry = scenario_report(run, sc, start_ns, labels, run.raised() - raised0, runbooks=runbooks)
        if run.baseline is not None:
            base = scenario_report(run, sc, start_ns, labels, run.raised(run.baseline) - base0, runbooks=runbooks,
                                   alerter=run.baseline, peak=run.baseline_peak)
            entry["baseline"] = {k: base[k] for k in ("raw_alarms", "alarms", "notifications", "pages", "incidents")}
        return entry
    finally:
        run.close()


def fault_types() -> list[str]:
    return sorted(FAULT_TYPES)


def default_db(out: Path) -> str:
    return f"sqlite:///{out}"
