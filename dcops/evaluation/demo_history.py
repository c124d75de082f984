"""The demo's past: a few weeks of incidents made by running the simulator's fault library
through the alert pipeline, so History, MTTA/MTTR and "have we seen this before?" have
something real to show on first start.

How it is made (`generate`):
- One simulated site (the demo's config, seeded) steps at `interval_s`; its batches and events
  feed the alerter's core, `AlertPipeline` (the default rule pack, alarm manager, topology
  correlation, grouping into incidents), whose cycles `AlerterStore` writes to a SQLite file,
  exactly the rows the demo's alerter writes. This is the rules-only path: the collectors, the
  bus and the analytics role of `dcops eval outages` are left out, which keeps generation
  under a few seconds per hundred steps (the full path costs seconds per step on the demo site).
- `episodes` faults of the library (`HISTORY_FAULTS`, each on a target the site has; cooling,
  UPS and PDU faults come back on the same unit, so there are recurring offenders) are
  injected one after another, each for `fault_s` (shortened from the library's durations to
  keep demo start cheap), followed by `settle_steps` for alarms to clear.
- Each episode's rows are moved to its place in the past weeks (spread over `days`, at a random
  hour); alarms the episode left behind (e.g. an ECC error counter that stays up until a reset)
  are cleared and rows raised after the episode's window are dropped.
- The operators' part is SYNTHETIC: nobody acknowledged or resolved these incidents. Times to
  acknowledge are drawn from a log-normal distribution per severity, times to resolve (repair)
  per fault type (`OperatorTimes`), from the same seed, and every such timeline entry says so.

`load_history` copies the rows into the demo's database with times shifted so the history ends
just before now; the generated file is cached (keyed by the site config, the options and
`VERSION`), so only the first start of a site pays for it. The same seed gives the same history.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

__all__ = ["HISTORY_FAULTS", "HistoryOptions", "OperatorTimes", "VERSION", "cached_history", "generate",
           "load_history", "step_pipeline"]

NS = 1_000_000_000
VERSION = 1  # bump when what `generate` writes changes: cached files of older versions are not used
END_NS = 1_900_000_000 * NS  # generated histories end here; `load_history` shifts them to end at "now"

# Fault types of the library the history draws from, in turn (those the site cannot host are left out).
HISTORY_FAULTS = ("crac_failure", "gpu_xid79", "psu_failure", "ups_on_battery", "npu_thermal_throttle",
                  "pdu_breaker_trip", "fan_failure", "hbm_thermal_throttle", "gpu_ecc_dbe", "cdu_pump_failure",
                  "tor_network_loss", "coolant_leak", "ups_output_lost")
# kinds whose faults come back on the same unit (recurring offenders); others get a fresh target
RECURRING_KINDS = ("cooling", "ups", "pdu")
SYNTHETIC = "synthetic operator response (demo history)"


@dataclass(frozen=True)
class OperatorTimes:
    """Synthetic operator and repair delays, log-normal: median seconds and spread (sigma of the
    log). Acknowledgement by severity (a critical page is picked up faster); resolution, counted
    from acknowledgement, by fault type (a GPU fallen off the bus needs a node reboot, a UPS
    back on mains needs a check)."""

    ack_median_s: dict = field(default_factory=lambda: {"critical": 150.0, "major": 360.0, "minor": 900.0,
                                                         "warning": 1800.0})
    ack_sigma: float = 0.6
    repair_median_s: dict = field(default_factory=lambda: {
        "crac_failure": 5400.0, "gpu_xid79": 2700.0, "psu_failure": 7200.0, "ups_on_battery": 1200.0,
        "npu_thermal_throttle": 1800.0, "pdu_breaker_trip": 2400.0, "fan_failure": 5400.0,
        "hbm_thermal_throttle": 1800.0, "gpu_ecc_dbe": 3600.0, "cdu_pump_failure": 4800.0,
        "tor_network_loss": 1500.0, "coolant_leak": 9000.0, "ups_output_lost": 3000.0})
    repair_default_s: float = 3600.0
    repair_sigma: float = 0.7

    def ack_s(self, rng: np.random.Generator, severity: str) -> float:
        return float(self.ack_median_s.get(severity, 900.0) * rng.lognormal(0.0, self.ack_sigma))

    def repair_s(self, rng: np.random.Generator, fault_type: str) -> float:
        return float(self.repair_median_s.get(fault_type, self.repair_default_s) * rng.lognormal(0.0, self.repair_sigma))


@dataclass(frozen=True)
class HistoryOptions:
    days: float = 21.0
    episodes: int = 30
    seed: int = 1
    interval_s: float = 30.0
    warmup_steps: int = 6
    fault_s: float = 180.0
    settle_steps: int = 6
    operators: tuple[str, ...] = ("alice", "bilal", "chen", "dana")


@dataclass(frozen=True)
class _Episode:
    fault: str
    target: str
    start_ns: int  # simulated
    end_ns: int
    placed_ns: int  # where it goes in the past weeks (relative to END_NS)


def _targets(inv, rng: np.random.Generator, opts: HistoryOptions) -> list[tuple[str, str]]:
    from dcops.sim import FAULT_TYPES

    kinds = [f for f in HISTORY_FAULTS if FAULT_TYPES[f].targets(inv)]
    pools: dict[str, str] = {}
    used: set[str] = set()
    out = []
    for k in range(opts.episodes):
        fault = kinds[k % len(kinds)]
        cands = sorted(FAULT_TYPES[fault].targets(inv))
        if inv.get(cands[0]).kind in RECURRING_KINDS:
            target = pools.setdefault(fault, str(cands[int(rng.integers(len(cands)))]))
        else:
            fresh = [c for c in cands if c not in used] or cands
            target = str(fresh[int(rng.integers(len(fresh)))])
        used.add(target)
        out.append((fault, target))
    return out


def step_pipeline(sim, pipeline, store, cursor: int) -> int:
    """One simulator step through the alert pipeline: its batches and events (the fault labels,
    which are ground truth, left out), one reconcile cycle written; returns the event cursor."""
    sim.step()
    for b in sim.batches():
        pipeline.feed_batch(b)
    events, cursor = sim.events_since(cursor)
    pipeline.feed_events([e for e in events if e.kind not in ("fault_injected", "fault_cleared")])
    store.write(pipeline.reconcile(sim.now_ns))
    return cursor


def generate(site_cfg, db_url: str, opts: HistoryOptions = HistoryOptions()) -> int:
    """Run the fault library through the alert pipeline into `db_url` (a fresh database) and place
    the episodes over the `days` before END_NS; returns the number of incidents written."""
    from dcops.alerts.config import AlertingConfig
    from dcops.alerts.pipeline import AlertPipeline
    from dcops.alerts.rules.engine import default_rules
    from dcops.alerts.storage.alerter_store import AlerterStore
    from dcops.alerts.storage.tables import open_engine
    from dcops.sim import Simulator

    rng = np.random.default_rng(opts.seed)
    sim = Simulator(site_cfg, seed=opts.seed, start_ns=END_NS - int(opts.days * 86400 * NS) - 86400 * NS,
                    interval_s=opts.interval_s)
    engine = open_engine(db_url)
    store = AlerterStore(engine)
    ids = itertools.count(1)
    pipeline = AlertPipeline(sim.inventory, default_rules(), AlertingConfig.model_validate(_history_alerting()), store,
                             new_id=lambda: f"h{next(ids):07d}")
    pipeline.load(sim.now_ns)
    cursor = 0

    def steps(n: int) -> None:
        nonlocal cursor
        for _ in range(n):
            cursor = step_pipeline(sim, pipeline, store, cursor)

    try:
        steps(opts.warmup_steps)
        span = opts.days * 86400 / opts.episodes
        episodes = []
        fault_steps = int(np.ceil(opts.fault_s / opts.interval_s))
        for k, (fault, target) in enumerate(_targets(sim.inventory, rng, opts)):
            start = sim.now_ns
            sim.inject(fault, target, duration_s=opts.fault_s)
            steps(fault_steps + opts.settle_steps)
            # at a random hour of its slot, oldest first
            placed = END_NS - int((opts.days * 86400 - (k + rng.uniform(0.1, 0.8)) * span) * NS)
            episodes.append(_Episode(fault, target, start, sim.now_ns, placed))
        _place(engine, episodes, rng, opts)
        with Session(engine) as s:
            from dcops.alerts.storage.tables import IncidentRow

            return len(s.scalars(select(IncidentRow.id)).all())
    finally:
        engine.dispose()


def _history_alerting() -> dict:
    """The eval's alerting config, without settling windows: the episodes run back to back here
    but are placed days apart, where no episode's symptoms fall in another's recovery."""
    from dcops.evaluation.runner import DEFAULT_ALERTING

    return {**DEFAULT_ALERTING, "grouping": {**DEFAULT_ALERTING["grouping"], "settle_cooling_s": 0, "settle_power_s": 0}}


def _episode_of(episodes: list[_Episode], t_ns: int) -> _Episode | None:
    for e in episodes:
        if e.start_ns <= t_ns < e.end_ns:
            return e
    return None


def _shift(row, columns: tuple[str, ...], by: int) -> None:
    for c in columns:
        v = getattr(row, c)
        if v is not None:
            setattr(row, c, int(v) + by)


ALARM_TIMES = ("raised_ns", "changed_ns", "cleared_ns", "acknowledged_ns")
INCIDENT_TIMES = ("opened_ns", "updated_ns", "acknowledged_ns", "resolved_ns", "closed_ns")


def _place(engine, episodes: list[_Episode], rng: np.random.Generator, opts: HistoryOptions) -> None:
    """Move every episode's rows to its place in the past, close what it left open, and give each
    incident its synthetic acknowledgement and resolution."""
    from dcops.alarm_types import TimelineKind
    from dcops.alerts.storage.tables import AlarmRow, IncidentRow, OperatorActionRow, OutboxRow, TimelineRow

    times = OperatorTimes()
    with Session(engine) as s:
        s.execute(delete(OutboxRow))  # pages of the past were sent back then; nothing to deliver now
        s.execute(delete(OperatorActionRow))
        incidents = s.scalars(select(IncidentRow).order_by(IncidentRow.opened_ns, IncidentRow.id)).all()
        of_incident: dict[str, _Episode] = {}
        for inc in incidents:
            ep = _episode_of(episodes, int(inc.opened_ns))
            if ep is None:  # opened during warm-up
                s.execute(delete(TimelineRow).where(TimelineRow.incident_id == inc.id))
                s.execute(delete(AlarmRow).where(AlarmRow.incident_id == inc.id))
                s.delete(inc)
                continue
            of_incident[inc.id] = ep
        for a in s.scalars(select(AlarmRow)).all():
            ep = of_incident.get(a.incident_id) if a.incident_id else _episode_of(episodes, int(a.raised_ns))
            if ep is None or int(a.raised_ns) >= ep.end_ns:  # warm-up noise, or raised after its episode
                s.delete(a)
                continue
            if a.cleared_ns is None or int(a.cleared_ns) > ep.end_ns:
                a.cleared_ns, a.cleared_by = ep.end_ns, "dcops"
            a.changed_ns = min(int(a.changed_ns), ep.end_ns)
            _shift(a, ALARM_TIMES, ep.placed_ns - ep.start_ns)
            a.listed = False  # history: not on the live NOC list
        for inc in incidents:
            ep = of_incident.get(inc.id)
            if ep is None:
                continue
            by = ep.placed_ns - ep.start_ns
            s.execute(delete(TimelineRow).where(TimelineRow.incident_id == inc.id, TimelineRow.time_ns >= ep.end_ns))
            s.execute(delete(TimelineRow).where(TimelineRow.incident_id == inc.id, TimelineRow.kind == "state"))
            for t in s.scalars(select(TimelineRow).where(TimelineRow.incident_id == inc.id)).all():
                t.time_ns = int(t.time_ns) + by
            opened = int(inc.opened_ns) + by
            ack = opened + int(times.ack_s(rng, inc.severity) * NS)
            resolved = min(ack + int(times.repair_s(rng, ep.fault) * NS), END_NS - 60 * NS)  # all of it in the past
            ack = min(ack, resolved)
            who = opts.operators[int(rng.integers(len(opts.operators)))]
            inc.opened_ns, inc.acknowledged_ns, inc.acknowledged_by = opened, ack, who
            inc.resolved_ns, inc.updated_ns, inc.closed_ns, inc.state = resolved, resolved, None, "resolved"
            inc.labels = {**(inc.labels or {}), "history": "demo", "fault_type": ep.fault}
            s.add_all([
                TimelineRow(incident_id=inc.id, time_ns=ack, kind=TimelineKind.STATE.value, actor=who,
                            text=f"open -> acknowledged ({SYNTHETIC})",
                            data={"state": "acknowledged", "previous": "open", "synthetic": True}),
                TimelineRow(incident_id=inc.id, time_ns=resolved, kind=TimelineKind.STATE.value, actor=who,
                            text=f"acknowledged -> resolved: {ep.fault} on {ep.target} repaired ({SYNTHETIC})",
                            data={"state": "resolved", "previous": "acknowledged", "synthetic": True}),
            ])
            for a in s.scalars(select(AlarmRow).where(AlarmRow.incident_id == inc.id)).all():
                if a.raised_ns <= ack:
                    a.acknowledged_ns, a.acknowledged_by = ack, who
        s.commit()


def _cache_key(site_cfg, opts: HistoryOptions) -> str:
    text = json.dumps({"version": VERSION, "site": site_cfg.model_dump(mode="json"), "options": asdict(opts)},
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cached_history(site_cfg, cache_dir: Path, opts: HistoryOptions = HistoryOptions()) -> Path:
    """The generated history of this site and options, generated on the first call (written to a
    temporary file and renamed, so an interrupted start leaves no half file)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"history-{_cache_key(site_cfg, opts)}.sqlite"
    if not path.exists():
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        generate(site_cfg, f"sqlite:///{tmp}", opts)
        os.replace(tmp, path)
    return path


def load_history(site_cfg, db_url: str, cache_dir: Path, now_ns: int,
                 opts: HistoryOptions = HistoryOptions()) -> int:
    """Copy the site's generated history into `db_url` (schema already there), its times shifted
    to end just before `now_ns`; returns the number of incidents copied."""
    from dcops.alerts.storage.tables import AlarmRow, IncidentRow, TimelineRow, open_engine

    src = open_engine(f"sqlite:///{cached_history(site_cfg, cache_dir, opts)}", create_tables=False)
    dst = open_engine(db_url, create_tables=False)
    by = int(now_ns) - END_NS
    try:
        with src.connect() as c:
            tables = [(t, [dict(r._mapping) for r in c.execute(select(t))]) for t in
                      (AlarmRow.__table__, IncidentRow.__table__, TimelineRow.__table__)]
        shifted = {AlarmRow.__tablename__: ALARM_TIMES, IncidentRow.__tablename__: INCIDENT_TIMES,
                   TimelineRow.__tablename__: ("time_ns",)}
        with dst.begin() as c:
            for table, rows in tables:
                for r in rows:
                    r.pop("seq", None)
                    for col in shifted[table.name]:
                        if r.get(col) is not None:
                            r[col] = int(r[col]) + by
                if rows:
                    c.execute(insert(table), rows)
        return len(tables[1][1])
    finally:
        src.dispose()
        dst.dispose()
