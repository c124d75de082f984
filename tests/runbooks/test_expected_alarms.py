"""While a run is active, the alarms its runbook expects are suppressed by the alerting pipeline
(listed, not notified, marked with the run's silence); other alarms are not; after the run ends
the same alarm is no longer suppressed."""

from __future__ import annotations

from dcops.alerts.config import AlertingConfig
from dcops.alerts.storage.tables import open_engine
from dcops.alerts.storage.alerter_store import AlerterStore
from dcops.alerts.pipeline import AlertPipeline
from dcops.alerts.storage.repository import Repository
from dcops.alerts.runbooks.engine import RunbookEngine
from dcops.alerts.runbooks.loader import load_runbooks
from dcops.alerts.rules.engine import default_rules
from dcops.alerts.alarms.signals import AlarmSignal
from dcops.alarm_types import EventType, PerceivedSeverity, ProbableCause
from tests.runbooks.support import NS, make_incident

T0 = 1_700_000_000 * NS


def _signal(t, component, cause, active=True):
    return AlarmSignal(t, component, "test_rule", active, PerceivedSeverity.MINOR, EventType.ENVIRONMENTAL, cause,
                       f"{cause.value} on {component}")


def test_pipeline_suppresses_expected_alarms_during_the_run(db_url, small_inventory):
    db = open_engine(db_url)
    now = [T0]
    repo = Repository(db, small_inventory, clock=lambda: now[0] / NS)
    eng = RunbookEngine(db, load_runbooks(), inventory=small_inventory, repository=repo, clock=lambda: now[0])
    eng.ensure_schema()
    make_incident(db, iid="inc-crac", component="CRAC-1", managed_object="dc/H1/CRAC-1",
                  cause=ProbableCause.HEATING_VENT_COOLING, severity=PerceivedSeverity.CRITICAL,
                  rule="cooling_unit_stopped", labels={"kind": "cooling"}, opened_ns=T0)
    store = AlerterStore(db)
    pipe = AlertPipeline(small_inventory, default_rules(), AlertingConfig(), store)
    pipe.load(T0)

    run = eng.start("inc-crac", "crac-failure", user="alice", role="operator")
    now[0] += 10 * NS
    pipe.feed_signals([_signal(now[0], "R1-02", ProbableCause.TEMPERATURE_UNACCEPTABLE),      # expected (row R1)
                       _signal(now[0], "R2-02", ProbableCause.TEMPERATURE_UNACCEPTABLE),      # other row
                       _signal(now[0], "R1-03", ProbableCause.LEAK_DETECTED)])                # other cause
    store.write(pipe.reconcile(now[0]), now[0])
    by_comp = {a.component: a for a in repo.list_alarms()}
    assert {f"silence:{s}" for s in run.silence_ids} & set(by_comp["R1-02"].suppressed_by)
    assert not by_comp["R2-02"].suppressed_by and not by_comp["R1-03"].suppressed_by

    eng.abort(run.id, user="alice", role="operator", reason="unit restarted by itself")
    now[0] += 10 * NS
    pipe.feed_signals([_signal(now[0], "R1-02", ProbableCause.TEMPERATURE_UNACCEPTABLE, active=False),
                       _signal(now[0] + NS, "R1-01", ProbableCause.TEMPERATURE_UNACCEPTABLE)])
    store.write(pipe.reconcile(now[0] + NS), now[0] + NS)
    r101 = next(a for a in repo.list_alarms() if a.component == "R1-01")
    assert not r101.suppressed_by                                  # the run ended: no longer expected
    db.dispose()
