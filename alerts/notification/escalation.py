"""Escalation policies on APScheduler with a SQL job store, so they survive restarts.

When an incident is triggered on a route with an escalation policy, every level of every
round is scheduled at once as a `date` job (`esc:<incident>:<policy>:<round>:<level>`) in
the `dcops_escalation_jobs` table. A job that comes due calls the alerter's handler, which
notifies the level's targets only if the incident is still unacknowledged; acknowledging,
resolving or closing the incident cancels the remaining jobs. Jobs that came due while dcops
was down run on the next start (`misfire_grace_time=None`, coalesced).

APScheduler stores jobs by a textual reference to a module-level function, so the job calls
`fire(handler_name, ...)`, which looks the handler up in `_HANDLERS`; the running alerter
registers itself there in `Escalator.start()` (never at import time).
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Callable, Sequence

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Column, Float, LargeBinary, MetaData, Table, Unicode
from sqlalchemy.engine import Engine

from dcops.alerts.config import AlertingConfig

__all__ = ["Escalator", "fire", "JOB_TABLE", "job_metadata"]

log = logging.getLogger(__name__)
JOB_TABLE = "dcops_escalation_jobs"
_HANDLERS: dict[str, Callable[[str, str, int, int], None]] = {}


def job_metadata() -> MetaData:
    """APScheduler 3's job table as its SQLAlchemyJobStore declares it; the Alembic migrations create
    it (revision 0003), so the store's own create-if-missing at start finds it in place."""
    md = MetaData()
    Table(JOB_TABLE, md,
          Column("id", Unicode(191), primary_key=True),
          Column("next_run_time", Float(25), index=True),
          Column("job_state", LargeBinary, nullable=False))
    return md


def fire(handler_name: str, incident_id: str, policy: str, round_: int, level: int) -> None:
    handler = _HANDLERS.get(handler_name)
    if handler is None:
        log.error("escalation %s for incident %s: no handler %r is running", policy, incident_id, handler_name)
        return
    handler(incident_id, policy, round_, level)


class Escalator:
    def __init__(self, engine: Engine, cfg: AlertingConfig, handler: Callable[[str, str, int, int], None],
                 name: str = "alerter") -> None:
        self.cfg = cfg
        self.name = name
        self.handler = handler
        self.scheduler = BackgroundScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=engine, tablename=JOB_TABLE)},
            job_defaults={"coalesce": True, "misfire_grace_time": None, "max_instances": 1},
            timezone=timezone.utc,
        )

    def start(self) -> None:
        _HANDLERS[self.name] = self.handler
        self.scheduler.start()

    def shutdown(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        if _HANDLERS.get(self.name) is self.handler:
            del _HANDLERS[self.name]

    def schedule(self, incident_id: str, policies: Sequence[str], opened_s: float) -> list[str]:
        ids = []
        for name in policies:
            pol = next((p for p in self.cfg.escalation_policies if p.name == name), None)
            if pol is None:
                log.error("escalation policy %r is not configured", name)
                continue
            period = max(pol.levels[-1].after_s, 60.0)
            for rnd in range(pol.repeat + 1):
                for li, lvl in enumerate(pol.levels):
                    at = datetime.fromtimestamp(opened_s + rnd * period + lvl.after_s, tz=timezone.utc)
                    jid = f"esc:{incident_id}:{name}:{rnd}:{li}"
                    self.scheduler.add_job(fire, "date", run_date=at, id=jid, replace_existing=True,
                                           args=[self.name, incident_id, name, rnd, li])
                    ids.append(jid)
        return ids

    def cancel(self, incident_id: str) -> int:
        n = 0
        for job in self.scheduler.get_jobs():
            if job.id.startswith(f"esc:{incident_id}:"):
                job.remove()
                n += 1
        return n

    def pending(self, incident_id: str | None = None) -> list[str]:
        return [j.id for j in self.scheduler.get_jobs() if incident_id is None or j.id.startswith(f"esc:{incident_id}:")]
