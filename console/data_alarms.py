"""Alarms and incidents for the console, read and changed only through the alerts stage's
`Repository` API (`dcops.alerts.storage.repository.Repository`, passed to `create_app(alarms=...)`).

Reads are cached per refresh tick (the floor and the alarm list share one read); operator
actions go straight to the repository with the signed-in user's name, so its audit trail and
incident timeline record who did what.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dcops.console.data import Context

__all__ = ["ALARM_RANK", "AlarmFilter", "alarm_table", "rack_alarm_rank", "open_incident_counts",
           "incident_table", "degrade_alarmed", "silence_matchers", "OPEN_STATES", "listed_alarms", "utc_time"]

# Floor colouring rank of a perceived severity (0 = no alarm).
ALARM_RANK = {"indeterminate": 1, "warning": 1, "minor": 2, "major": 3, "critical": 4}
SEVERITIES = ("critical", "major", "minor", "warning", "indeterminate")
OPEN_STATES = ("open", "acknowledged", "mitigating")


def _v(x) -> str:
    return getattr(x, "value", x) if x is not None else ""


def listed_alarms(ctx: Context) -> list:
    """Every listed alarm (active or cleared-unacknowledged), once per refresh tick."""
    if ctx.alarms is None:
        return []
    return ctx.cache.get("alarms", ctx.tick(), lambda: ctx.alarms.list_alarms(limit=100_000))


def rack_alarm_rank(ctx: Context) -> dict[str, int]:
    """Worst active alarm per rack: alarms on the rack or anything in it, and alarms on what the
    rack depends on (its PDUs, UPSes, cooling units), so an upstream failure shows where it hits."""
    inv = ctx.inventory
    out: dict[str, int] = {}
    racks = {r.name for r in inv.racks}
    below = ctx.memo.setdefault("racks_below", {})  # component -> racks that depend on it (static)
    for a in listed_alarms(ctx):
        if not a.active:
            continue
        rank = ALARM_RANK.get(_v(a.severity), 0)
        hit = set()
        rack = a.labels.get("rack", "")
        if rack:
            hit.add(rack)
        elif a.component in inv.components:
            if a.component not in below:
                below[a.component] = frozenset(inv.downstream(a.component) & racks)
            hit = below[a.component]
        for r in hit:
            out[r] = max(out.get(r, 0), rank)
    return out


def open_incident_counts(ctx: Context) -> dict[str, int]:
    """Open (not resolved or closed) incidents by severity."""
    if ctx.alarms is None:
        return {}
    incidents = ctx.cache.get("open_incidents", ctx.tick(), lambda: ctx.alarms.list_incidents(states=OPEN_STATES))
    counts = {s: 0 for s in SEVERITIES}
    for i in incidents:
        counts[_v(i.severity)] = counts.get(_v(i.severity), 0) + 1
    return counts


def degrade_alarmed(ctx: Context, ids: np.ndarray, states: np.ndarray) -> np.ndarray:
    """Accelerators that answer but are the subject of an active alarm of an open incident (a
    throttling NPU whose collector reports no throttle flag, a GPU flagged by a detector) count as
    degraded: `states` (codes into data.ACCEL_STATES, 0 healthy, 1 degraded, for the accelerators
    `ids`) with those changed, as a new array."""
    if ctx.alarms is None or not len(ids):
        return states
    open_ids = {i.id for i in ctx.cache.get("open_incidents", ctx.tick(),
                                           lambda: ctx.alarms.list_incidents(states=OPEN_STATES))}
    hit = {a.component for a in listed_alarms(ctx) if a.active and a.incident_id in open_ids}
    if not hit:
        return states
    # a hash lookup of the few alarmed components, not a sort of every accelerator id
    index = ctx.memo.get("accel_index")
    if index is None or index[0] is not ids:
        index = ctx.memo["accel_index"] = (ids, pd.Index(np.asarray(ids, dtype=object)))
    pos = index[1].get_indexer(list(hit))
    alarmed = np.zeros(len(ids), dtype=bool)
    alarmed[pos[pos >= 0]] = True
    return np.where(alarmed & (states == 0), 1, states)


@dataclass(frozen=True)
class AlarmFilter:
    min_severity: str | None = None
    area: str | None = None  # hall or row name
    cause: str | None = None
    text: str | None = None
    fold: bool = True  # symptoms folded under their root cause


def utc_time(ns) -> str:
    return pd.Timestamp(int(ns), unit="ns", tz="UTC").strftime("%Y-%m-%d %H:%M:%S") if ns else ""


def alarm_table(ctx: Context, f: AlarmFilter) -> list[dict]:
    """Rows for the alarm grid, most severe and newest first; with `fold`, symptoms are left
    out and counted on their root cause's row."""
    alarms = listed_alarms(ctx)
    inv = ctx.inventory
    if f.min_severity:
        floor = ALARM_RANK.get(f.min_severity, 0)
        alarms = [a for a in alarms if ALARM_RANK.get(_v(a.severity), 0) >= floor]
    if f.area:
        alarms = [a for a in alarms if f.area in (a.labels.get("hall"), a.labels.get("row"))
                  or (a.component in inv.components and f.area in (inv.components[a.component].hall,
                                                                   inv.components[a.component].row))]
    if f.cause:
        alarms = [a for a in alarms if _v(a.probable_cause) == f.cause]
    if f.text:
        t = f.text.lower()
        alarms = [a for a in alarms if t in a.specific_problem.lower() or t in a.managed_object.lower()
                  or t in a.component.lower()]
    if f.fold:
        alarms = [a for a in alarms if not a.root_alarm_id]
    rows = []
    for a in alarms:
        rows.append({
            "id": a.id, "severity": _v(a.severity), "rank": ALARM_RANK.get(_v(a.severity), 0),
            "state": _v(a.list_state), "component": a.component, "object": a.managed_object,
            "problem": a.specific_problem, "cause": _v(a.probable_cause), "raised": utc_time(a.raised_ns),
            "acknowledged_by": a.acknowledged_by or "", "incident": a.incident_id or "",
            "role": "root cause" if a.root_cause else ("symptom" if a.root_alarm_id else ""),
            "symptoms": len(a.correlated), "suppressed": ", ".join(a.suppressed_by),
            "expected": "maintenance" if a.expected else "", "count": a.count,
        })
    return rows


def causes(ctx: Context) -> list[str]:
    return sorted({_v(a.probable_cause) for a in listed_alarms(ctx)})


def silence_matchers(alarm) -> list[str]:
    """Matchers that silence exactly this alarm (its component and probable cause)."""
    return [f'component="{alarm.component}"', f'probable_cause="{_v(alarm.probable_cause)}"']


def incident_table(ctx: Context, open_only: bool) -> list[dict]:
    if ctx.alarms is None:
        return []
    from dcops.console.data_impact import impact_ranking

    incidents = ctx.alarms.list_incidents(states=OPEN_STATES if open_only else None)
    # impact now, for open incidents only (a resolved one's accelerators are no longer its doing)
    impact = impact_ranking(ctx, [i for i in incidents if _v(i.state) in OPEN_STATES])
    none = {"impact_accels": None, "impact_tokens_per_s_lost": None, "impact_power_kw": None}
    return [{"id": i.id, "title": i.title, "state": _v(i.state), "severity": _v(i.severity),
             "opened": utc_time(i.opened_ns), "root": i.root_component or "", "alarms": len(i.alarm_ids),
             "acknowledged_by": i.acknowledged_by or "", "opened_by": i.opened_by, **impact.get(i.id, none)}
            for i in incidents]


# ----- history -------------------------------------------------------------------------------
NS = 1_000_000_000


def incident_history(ctx: Context, days: float) -> pd.DataFrame:
    """Incidents opened in the last `days` (anchored at the console clock): one row each with
    time to acknowledge and to resolve in seconds (NaN while not yet)."""
    cols = ["id", "title", "state", "severity", "root", "opened_ns", "tta_s", "ttr_s", "cause"]
    if ctx.alarms is None:
        return pd.DataFrame(columns=cols)
    since = int((ctx.clock() - days * 86400) * NS)
    rows = []
    for i in ctx.alarms.list_incidents(since_ns=since, limit=100_000):
        rows.append((i.id, i.title, _v(i.state), _v(i.severity), i.root_component or "", i.opened_ns,
                     (i.acknowledged_ns - i.opened_ns) / NS if i.acknowledged_ns else float("nan"),
                     (i.resolved_ns - i.opened_ns) / NS if i.resolved_ns else float("nan"),
                     i.labels.get("probable_cause", "")))
    return pd.DataFrame(rows, columns=cols)


def daily_response(history: pd.DataFrame) -> pd.DataFrame:
    """MTTA and MTTR per day (UTC) in minutes."""
    if history.empty:
        return pd.DataFrame(columns=["day", "incidents", "mtta_min", "mttr_min"])
    day = pd.to_datetime(history["opened_ns"], unit="ns", utc=True).dt.floor("D")
    g = history.assign(day=day).groupby("day")
    return pd.DataFrame({"incidents": g.size(), "mtta_min": g["tta_s"].mean() / 60,
                         "mttr_min": g["ttr_s"].mean() / 60}).reset_index()


def recurring_offenders(history: pd.DataFrame, top: int = 10, at_least: int = 2) -> pd.DataFrame:
    """Root components with `at_least` incidents in the history (a one-off is no offender), most first."""
    if history.empty:
        return pd.DataFrame(columns=["root", "incidents", "last_opened"])
    h = history[history["root"] != ""]
    g = h.groupby("root").agg(incidents=("id", "size"), last_opened=("opened_ns", "max")).reset_index()
    g = g[g["incidents"] >= at_least]
    g["last_opened"] = [utc_time(t) for t in g["last_opened"]]
    return g.sort_values(["incidents", "root"], ascending=[False, True]).head(top).reset_index(drop=True)


def similar_incidents(ctx: Context, incident_id: str, history: pd.DataFrame) -> pd.DataFrame:
    """Earlier incidents with the same root component, or the same probable cause on the same
    kind of component ("have we seen this before?")."""
    inc = ctx.alarms.get_incident(incident_id)  # KeyError names an unknown incident
    cause = inc.labels.get("probable_cause", "")
    kind = inc.labels.get("kind", "")
    kinds = {i: ctx.inventory.components[r].kind for i, r in zip(history["id"], history["root"])
             if r in ctx.inventory.components}
    same_root = history["root"] == (inc.root_component or "\0")
    same_cause = (history["cause"] == cause) & history["id"].map(lambda i: kinds.get(i) == kind) if cause else False
    out = history[(same_root | same_cause) & (history["id"] != inc.id)].copy()
    out["why"] = ["same component" if r == inc.root_component else f"same cause on a {kind}" for r in out["root"]]
    return out.sort_values("opened_ns", ascending=False).reset_index(drop=True)


def postmortem_markdown(ctx: Context, incident_id: str) -> str:
    """A postmortem draft of the incident: summary, timeline, alarms, notifications."""
    repo = ctx.alarms
    inc = repo.get_incident(incident_id)
    alarms = repo.incident_alarms(incident_id)
    lines = [f"# Postmortem: {inc.title}", "", f"- Incident: `{inc.id}`", f"- Severity: {_v(inc.severity)}",
             f"- State: {_v(inc.state)}", f"- Root cause component: {inc.root_component or 'unknown'}",
             f"- Opened: {utc_time(inc.opened_ns)} UTC by {inc.opened_by}"]
    if inc.acknowledged_ns:
        lines.append(f"- Acknowledged: {utc_time(inc.acknowledged_ns)} UTC by {inc.acknowledged_by} "
                     f"({(inc.acknowledged_ns - inc.opened_ns) / 60e9:.1f} min)")
    if inc.resolved_ns:
        lines.append(f"- Resolved: {utc_time(inc.resolved_ns)} UTC ({(inc.resolved_ns - inc.opened_ns) / 60e9:.1f} min)")
    lines += ["", "## Alarms", "", "| role | severity | component | problem | cause | raised |", "|---|---|---|---|---|---|"]
    for a in alarms:
        role = "root cause" if a.component == inc.root_component or a.root_cause else "symptom"
        lines.append(f"| {role} | {_v(a.severity)} | {a.component} | {_md(a.specific_problem)} | "
                     f"{_v(a.probable_cause)} | {utc_time(a.raised_ns)} |")
    lines += ["", "## Timeline (UTC)", ""]
    lines += [f"- {utc_time(e.time_ns)} [{_v(e.kind)}] {e.actor}: {_md(e.text)}" for e in inc.timeline]
    notes = repo.notifications(incident_id=incident_id)
    lines += ["", "## Notifications", ""]
    lines += [f"- {utc_time(n.created_ns)} {n.receiver} {_v(n.action)}: {_v(n.status)} after {n.attempts} attempt(s)"
              for n in notes] or ["- none"]
    lines += ["", "## What went well / what to improve / actions", "", "- ", ""]
    return "\n".join(lines)


def _md(text: str) -> str:
    """Operator text in a Markdown table or list: no raw HTML, no table breaks."""
    return (text or "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|") \
        .replace("\n", " ")
