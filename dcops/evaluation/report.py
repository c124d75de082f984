"""The report of one scenario, read back from what the alerter wrote (alarms, incidents, outbox).

    {"name", "raw_alarms", "alarms", "notifications", "pages",
     "faults": [{"at_s", "fault", "target", "fault_id", "until_s", "affected", "first_analytics_s", "first_rule_s"}],
     "incidents": [{"id", "root_component", "root_kind", "root_probable_cause", "severity", "opened_s",
                    "alarms", "notifications", "runbook"}]}

Times are seconds from the scenario start (after warm-up); incidents opened during warm-up are
left out, as are alarms raised then. `raw_alarms` counts every raise (a re-raise counts again);
`alarms` the distinct alarms; `notifications` every outbox row of the scenario's incidents
(trigger, resolve, suppressed); `pages` the trigger notifications that were not suppressed. An incident's `severity` is the
worst it reached while open (what the NOC was told at its worst), not what is left at the end.
"""

from __future__ import annotations

from dcops.alarm_types import DeliveryStatus, IncidentAction

__all__ = ["scenario_report"]

NS = 1_000_000_000


def scenario_report(run, sc, start_ns: int, labels, raw_alarms: int, runbooks=None, alerter=None,
                    peak=None) -> dict:
    from dcops.alerts.storage.repository import Repository

    inv = run.inv
    alerter = alerter or run.alerter
    peak = run.peak if peak is None else peak
    repo = Repository(alerter.engine, inv, clock=lambda: run.sim.now_ns / NS)
    alarms = [a for a in repo.list_alarms(limit=1_000_000) if a.raised_ns >= start_ns]
    by_incident: dict[str, list] = {}
    for a in alarms:
        if a.incident_id:
            by_incident.setdefault(a.incident_id, []).append(a)
    notes = [n for n in repo.notifications(limit=1_000_000) if n.created_ns >= start_ns]
    notes_of: dict[str, list] = {}
    for n in notes:
        notes_of.setdefault(n.incident_id or "", []).append(n)
    incidents = []
    for inc in sorted(repo.list_incidents(since_ns=start_ns, limit=1_000_000), key=lambda i: (i.opened_ns, i.id)):
        members = by_incident.get(inc.id, [])
        root = next((a for a in members if a.id == inc.root_alarm_id), None)
        if root is None and members:
            root = next((a for a in members if a.component == inc.root_component), members[0])
        comp = inc.root_component or (root.component if root else "")
        kind = inv.components[comp].kind if comp in inv.components else ""
        incidents.append({
            "id": inc.id,
            "root_component": comp,
            "root_kind": kind,
            "root_probable_cause": root.probable_cause.value if root else "",
            "severity": peak.get(inc.id, inc.severity).value,
            "opened_s": round((inc.opened_ns - start_ns) / NS, 3),
            "alarms": len(members),
            "notifications": len(notes_of.get(inc.id, [])),
            "runbook": _runbook(runbooks, root, kind),
        })
    anomaly_rules = {r.name for r in alerter.pipeline.engine.rules if r.type == "anomaly"}
    since: dict = {}  # alarm key -> rule -> when that rule started raising it
    for (key, rule), t in alerter.pipeline.manager.rule_since.items():
        since.setdefault(key, {})[rule] = t
    pages = sum(1 for n in notes if n.action is IncidentAction.TRIGGER and n.status is not DeliveryStatus.SUPPRESSED)
    return {
        "name": sc.name,
        "duration_s": sc.duration_s,
        "raw_alarms": int(raw_alarms),
        "alarms": len(alarms),
        "notifications": len(notes),
        "pages": pages,
        "faults": [{"at_s": f.at_s, "fault": f.fault, "target": label.target, "fault_id": label.fault_id,
                    "until_s": None if label.end_ns is None else round((label.end_ns - start_ns) / 1e9, 3),
                    "affected": list(label.affected),
                    **_first_alarms(alarms, label, start_ns, anomaly_rules, since)}
                   for f, label in labels],
        "incidents": incidents,
    }


def _first_alarms(alarms, label, start_ns: int, anomaly_rules: set[str], since=None) -> dict:
    """When the fault was first seen, in seconds from the scenario start: by an analytics finding
    (an anomaly rule) and by any other rule (thresholds, states, events), on its target or on what
    it affects; None where it was not. A slow drift should be flagged before any threshold. An
    alarm fed by several rules counts each at the time that rule started raising it
    (`since`: alarm key -> rule -> time, from the alarm manager; without it, the alarm's own
    raise time)."""
    reach = {label.target, *label.affected}
    first = {"first_analytics_s": None, "first_rule_s": None}
    for a in alarms:
        if a.component not in reach:
            continue
        # every rule that fed the alarm, those whose source has since cleared too
        fed = (since or {}).get(a.key, {})
        for rule in sorted(set(filter(None, a.rule.split(","))) | set(fed)):
            t_ns = fed.get(rule, a.raised_ns)
            if t_ns < label.start_ns:
                continue
            key = "first_analytics_s" if rule in anomaly_rules else "first_rule_s"
            t = round((t_ns - start_ns) / NS, 3)
            if first[key] is None or t < first[key]:
                first[key] = t
    return first


def _runbook(runbooks, root, kind: str) -> str | None:
    if runbooks is None or root is None:
        return None
    from dcops.alerts.runbooks.loader import applicable

    found = applicable(runbooks.values(), root, kind or None)
    return found[0].id if found else None
