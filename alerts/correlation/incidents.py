"""Incident helpers: titles, labels, timeline entries and notification messages.

An incident groups one root-cause alarm and the alarms it explains (its symptoms), or one
standalone alarm, or whatever an operator put together. Its `labels` are the root alarm's
labels plus `severity`, used for routing; `labels["epoch"]` counts re-openings so a reopened
incident notifies again under fresh idempotency keys.
"""

from __future__ import annotations

import uuid
from typing import Iterable, Mapping, Sequence

from dcops.alarm_types import (SEVERITY_RANK, Alarm, DeliveryStatus, Incident, IncidentAction, Notification,
                               PerceivedSeverity, TimelineEntry, TimelineKind)

__all__ = ["incident_title", "incident_labels", "worst", "alarm_summary", "build_message", "make_notification",
           "entry", "idempotency_key"]

_NS = 1_000_000_000


def worst(alarms: Iterable[Alarm]) -> PerceivedSeverity:
    return max((a.severity for a in alarms), key=SEVERITY_RANK.__getitem__, default=PerceivedSeverity.INDETERMINATE)


def incident_title(root: Alarm, n_symptoms: int) -> str:
    t = f"{root.specific_problem or root.probable_cause.value} ({root.component})"
    if n_symptoms:
        t += f" + {n_symptoms} correlated alarm{'s' if n_symptoms != 1 else ''}"
    return t[:400]


def incident_labels(root: Alarm, severity: PerceivedSeverity, epoch: int = 0) -> dict[str, str]:
    labels = dict(root.labels)
    labels["severity"] = severity.value
    labels["epoch"] = str(epoch)
    return labels


def alarm_summary(a: Alarm) -> dict:
    return {"id": a.id, "managed_object": a.managed_object, "component": a.component,
            "probable_cause": a.probable_cause.value, "event_type": a.event_type.value, "severity": a.severity.value,
            "specific_problem": a.specific_problem, "proposed_repair_actions": list(a.proposed_repair_actions),
            "root_cause": a.root_cause, "raised_ns": a.raised_ns, "cleared_ns": a.cleared_ns,
            "suppressed_by": list(a.suppressed_by), "expected": a.expected}


def build_message(incident: Incident, action: IncidentAction, site: str, root: Alarm | None,
                  members: Sequence[Alarm], receiver: str, *, level: str = "", oncall: str | None = None,
                  max_alarms: int = 50) -> dict:
    """The generic notification message (what the outbox stores and the webhook sends)."""
    return {
        "version": "1",
        "site": site,
        "action": action.value,
        "receiver": receiver,
        "escalation_level": level,
        "oncall": oncall,
        "incident": {"id": incident.id, "title": incident.title, "state": incident.state.value,
                     "severity": incident.severity.value, "opened_ns": incident.opened_ns,
                     "root_component": incident.root_component, "labels": dict(incident.labels)},
        "root_alarm": alarm_summary(root) if root is not None else None,
        "symptom_count": max(0, len(members) - (1 if root is not None else 0)),
        "alarms": [alarm_summary(a) for a in list(members)[:max_alarms]],
    }


def idempotency_key(incident: Incident, receiver: str, action: IncidentAction, suffix: str = "") -> str:
    epoch = incident.labels.get("epoch", "0")
    return f"{incident.id}.{epoch}:{receiver}:{action.value}{(':' + suffix) if suffix else ''}"


def make_notification(incident: Incident, receiver: str, notifier: str, action: IncidentAction, message: Mapping,
                      now_ns: int, *, suppressed: bool = False, suffix: str = "", reason: str = "") -> Notification:
    return Notification(
        id=uuid.uuid4().hex[:16], idempotency_key=idempotency_key(incident, receiver, action, suffix), receiver=receiver,
        notifier=notifier, action=action, incident_id=incident.id,
        status=DeliveryStatus.SUPPRESSED if suppressed else DeliveryStatus.PENDING, created_ns=now_ns,
        last_error=reason, payload=dict(message, idempotency_key=idempotency_key(incident, receiver, action, suffix)),
    )


def entry(t: int, kind: TimelineKind, text: str, actor: str = "dcops", alarm_id: str | None = None,
          notification_id: str | None = None, **data) -> TimelineEntry:
    return TimelineEntry(time_ns=int(t), kind=kind, text=text, actor=actor, alarm_id=alarm_id,
                         notification_id=notification_id, data=data)
