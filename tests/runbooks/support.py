"""Helpers for runbook and history tests: a simulated site feeding a DuckDB store and the
alerting pipeline, and hand-made incidents written through the alerter's persistence API."""

from __future__ import annotations

from dcops.alarm_types import Alarm, EventType, Incident, IncidentState, PerceivedSeverity, ProbableCause
from dcops.sim import Simulator
from dcops.store.duckdb_store import DuckDBStore

NS = 1_000_000_000


class SiteDriver:
    """Steps the simulator; every step goes to the store and through the alert pipeline."""

    def __init__(self, site, db_engine, seed: int = 1) -> None:
        from dcops.alerts.config import AlertingConfig
        from dcops.alerts.storage.alerter_store import AlerterStore
        from dcops.alerts.pipeline import AlertPipeline
        from dcops.alerts.rules.engine import default_rules

        self.sim = Simulator(site, seed=seed)
        self.store = DuckDBStore(":memory:")
        self.alerter_store = AlerterStore(db_engine)
        self.pipeline = AlertPipeline(self.sim.inventory, default_rules(), AlertingConfig(), self.alerter_store)
        self.pipeline.load(self.sim.now_ns)
        self._cursor = 0

    def now_ns(self) -> int:
        return self.sim.now_ns

    def step(self, n: int = 1) -> None:
        for _ in range(n):
            self.sim.step()
            batches = self.sim.batches()
            self.store.write(batches)
            events, self._cursor = self.sim.events_since(self._cursor)
            self.store.write_events(events)
            for b in batches:
                self.pipeline.feed_batch(b)
            self.pipeline.feed_events(events)
            self.alerter_store.write(self.pipeline.reconcile(self.sim.now_ns), self.sim.now_ns)


def make_incident(db_engine, *, iid: str, component: str, managed_object: str, cause: ProbableCause,
                  severity: PerceivedSeverity = PerceivedSeverity.MAJOR, opened_ns: int = 1_700_000_000 * NS,
                  rule: str = "", labels: dict | None = None, text: str = "", acknowledged_ns: int | None = None,
                  resolved_ns: int | None = None, closed_ns: int | None = None, kind: str = "") -> Incident:
    """Write an incident with its root alarm through `AlerterStore.write` (the alerter's API)."""
    from dcops.alerts.storage.alerter_store import AlerterStore, CycleWrite

    lab = {"component": component, "probable_cause": cause.value, **({"kind": kind} if kind else {}), **(labels or {})}
    alarm = Alarm(id=f"a-{iid}", component=component, managed_object=managed_object, event_type=EventType.EQUIPMENT,
                  probable_cause=cause, severity=severity, specific_problem=text or f"{cause.value} on {component}",
                  raised_ns=opened_ns, changed_ns=opened_ns, rule=rule, labels=lab, root_cause=True, incident_id=iid)
    state = (IncidentState.CLOSED if closed_ns else IncidentState.RESOLVED if resolved_ns
             else IncidentState.ACKNOWLEDGED if acknowledged_ns else IncidentState.OPEN)
    inc = Incident(id=iid, title=alarm.specific_problem, state=state, severity=severity, opened_ns=opened_ns,
                   updated_ns=opened_ns, root_alarm_id=alarm.id, root_component=component, alarm_ids=(alarm.id,),
                   acknowledged_ns=acknowledged_ns, acknowledged_by="alice" if acknowledged_ns else None,
                   resolved_ns=resolved_ns, closed_ns=closed_ns, labels=dict(lab, severity=severity.value))
    AlerterStore(db_engine).write(CycleWrite(alarms={alarm.id: alarm}, new_incidents={iid: inc}))
    return inc
