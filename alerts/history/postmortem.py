"""Postmortem export to Markdown: summary, root cause, timeline, steps taken (runbook runs),
telemetry around the incident with the data behind its charts (CSV blocks), similar past
incidents, and the audit chain's state.

`render_postmortem` is pure (dataclasses in, text out); `export_postmortem` gathers the inputs
from the database (and the store, when given).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Sequence

import numpy as np
from sqlalchemy import inspect
from sqlalchemy.engine import Engine

from dcops.alerts.storage.audit import AuditLog, AuditVerification
from dcops.alerts.history.analysis import IncidentFacts, Series, Similar, incident_facts, similar_incidents, telemetry_around, \
    telemetry_signature
from dcops.alerts.storage.repository import Repository
from dcops.alerts.runbooks.engine import RunbookEngine
from dcops.alerts.runbooks.state import RunView
from dcops.alarm_types import Alarm, Incident
from dcops.store.base import Store
from dcops.topology import Inventory

__all__ = ["render_postmortem", "export_postmortem"]

_NS = 1_000_000_000


def _t(ns: int | None) -> str:
    if ns is None:
        return "-"
    return datetime.fromtimestamp(ns / _NS, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _dur(s: float | None) -> str:
    if s is None:
        return "-"
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").strip() or "-"


def _table(head: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows]
    return out


def render_postmortem(incident: Incident, alarms: Sequence[Alarm], runs: Sequence[RunView] = (),
                      series: Sequence[Series] = (), similar: Sequence[tuple[Similar, IncidentFacts]] = (),
                      audit: AuditVerification | None = None) -> str:
    root = next((a for a in alarms if a.id == incident.root_alarm_id), alarms[0] if alarms else None)
    tta = (incident.acknowledged_ns - incident.opened_ns) / _NS if incident.acknowledged_ns else None
    end = incident.resolved_ns or incident.closed_ns
    ttr = (end - incident.opened_ns) / _NS if end else None
    L = [f"# Postmortem: {incident.title}", ""]
    L += _table(["field", "value"], [
        ("incident", incident.id), ("severity", incident.severity.value), ("state", incident.state.value),
        ("root component", root.managed_object if root else incident.root_component or "-"),
        ("opened", f"{_t(incident.opened_ns)} by {incident.opened_by}"),
        ("acknowledged", f"{_t(incident.acknowledged_ns)} by {incident.acknowledged_by or '-'} (TTA {_dur(tta)})"),
        ("resolved", f"{_t(incident.resolved_ns)} (TTR {_dur(ttr)})"), ("closed", _t(incident.closed_ns)),
        ("alarms", len(alarms))])
    L += ["", "## Root cause", ""]
    if root is None:
        L.append("No alarm is attached to this incident.")
    else:
        L.append(f"**{root.probable_cause.value}** ({root.event_type.value}, {root.severity.value}) on "
                 f"`{root.managed_object}`: {root.specific_problem}")
        if root.proposed_repair_actions:
            L += ["", "Proposed repair actions:", *[f"- {a}" for a in root.proposed_repair_actions]]
        symptoms = [a for a in alarms if a.id != root.id]
        if symptoms:
            L += ["", f"It explains {len(symptoms)} correlated alarm(s):", ""]
            L += _table(["raised", "object", "cause", "severity", "cleared"],
                        [(_t(a.raised_ns), a.managed_object, a.probable_cause.value, a.severity.value, _t(a.cleared_ns))
                         for a in symptoms])
    L += ["", "## Timeline", ""]
    L += _table(["time", "who", "what", "detail"], [(_t(e.time_ns), e.actor, e.kind.value, e.text) for e in incident.timeline])
    L += ["", "## Steps taken", ""]
    if not runs:
        L.append("No runbook was run.")
    for run in runs:
        rb = run.runbook
        L += [f"### {rb.title} (runbook `{rb.id}` v{rb.version}): {run.state}", "",
              f"Started {_t(run.started_ns)} by {run.started_by}; ended {_t(run.ended_ns)} by {run.ended_by or '-'}. "
              f"Impact: {rb.impact.strip()}", ""]
        L += _table(["section", "step", "status", "by", "at", "note / output"],
                    [(s.section, s.title, s.status, s.last_user or "-", _t(s.last_time_ns),
                      s.note or s.output.get("summary") or s.output.get("output") or "") for s in run.steps])
        approvals = [e for e in run.events if e.kind == "approved"]
        if approvals:
            L += ["", "Approvals: " + "; ".join(f"{e.step_id} approved by {e.user} at {_t(e.time_ns)}" for e in approvals)]
        L.append("")
    L += ["## Telemetry", ""]
    if not series:
        L.append("No telemetry available for this incident.")
    for s in series:
        before = s.values[s.time_ns < incident.opened_ns]
        after = s.values[s.time_ns >= incident.opened_ns]
        stat = lambda v: f"{np.nanmean(v):.2f}" if v.size and np.isfinite(v).any() else "-"  # noqa: E731
        L += [f"### {s.metric} ({s.unit}), {s.label}", "",
              f"Mean before opening {stat(before)}, after {stat(after)}; "
              f"min {np.nanmin(s.values):.2f}, max {np.nanmax(s.values):.2f}.", "",
              "Data behind the chart:", "", "```csv", "time_utc,time_ns,value"]
        L += [f"{_t(int(t))},{int(t)},{'' if not np.isfinite(v) else f'{v:.4g}'}" for t, v in zip(s.time_ns, s.values)]
        L += ["```", ""]
    L += ["## Similar past incidents", ""]
    if not similar:
        L.append("None found.")
    else:
        L += _table(["incident", "opened", "title", "distance", "in common"],
                    [(f.id, _t(f.opened_ns), f.title, f"{sim.distance:.2f}", ", ".join(sim.shared)) for sim, f in similar])
    if audit is not None:
        state = "intact" if audit.ok else f"BROKEN at record {audit.first_bad_seq}: {audit.reason}"
        L += ["", "## Audit", "", f"Audit log hash chain: {state} ({audit.checked} records checked)."]
    return "\n".join(L) + "\n"


def export_postmortem(db: Engine, incident_id: str, *, store: Store | None = None, inventory: Inventory | None = None,
                      before_s: float = 1800, after_s: float = 1800, k_similar: int = 5) -> str:
    repo = Repository(db, inventory)
    inc = repo.get_incident(incident_id)  # KeyError names a missing incident
    alarms = repo.incident_alarms(incident_id)
    have = set(inspect(db).get_table_names())
    runs = RunbookEngine(db, {}, inventory=inventory, repository=repo).runs(incident_id) if "runbook_runs" in have else []
    facts = incident_facts(db, inventory)
    me = next(f for f in facts if f.id == incident_id)
    series: list[Series] = []
    sigs: dict[str, dict[str, float]] = {}
    if store is not None and inventory is not None:
        series = telemetry_around(store, inventory, me, before_s, after_s)
        past = [f for f in facts if f.opened_ns <= me.opened_ns]
        for f in past:
            s = series if f.id == me.id else telemetry_around(store, inventory, f, 900, 900)
            sigs[f.id] = telemetry_signature(s, f.opened_ns)
    else:
        past = [f for f in facts if f.opened_ns <= me.opened_ns]
    by_id = {f.id: f for f in facts}
    similar = [(s, by_id[s.incident_id]) for s in similar_incidents(me, past, sigs, k_similar)]
    audit = AuditLog(db).verify() if "audit_log" in have else None
    return render_postmortem(inc, alarms, runs, series, similar, audit)
