"""Which notifications an incident change produces: routing, suppression, outbox rows.

`NotificationPlanner.plan` turns (incident, action) into outbox rows in a `CycleWrite`:
- trigger: the routes that match the incident's labels give receivers and escalation
  policies; when the root alarm is suppressed (silence, maintenance, inhibition) the rows are
  written with status `suppressed` and a timeline entry says why, and nothing is sent;
- acknowledge / resolve: to every receiver that was sent this incident's trigger (the outbox
  knows, plus this cycle's triggers not yet written).
It returns the incident with `labels["notified"]` set ("sent" or "suppressed"), which the
pipeline uses to notify once a suppression ends.

Every message carries `links` ({href, text}): the incident in the console
(`<console_url>/incident/<id>`, when the alerting config sets `console_url`) first, then the
root alarm's sources (Prometheus expression, Alertmanager, runbook) when it has them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from typing import Callable, Mapping, Sequence
from urllib.parse import quote

from dcops.alerts.config import AlertingConfig
from dcops.alerts.correlation.incidents import build_message, entry, make_notification
from dcops.alerts.storage.alerter_store import AlerterStore, CycleWrite
from dcops.alerts.notification.routing import match_routes
from dcops.alarm_types import Alarm, Incident, IncidentAction, TimelineKind as TK

__all__ = ["NotificationPlanner"]

_SOURCE_LINKS = (("generator_url", "Source (Prometheus)"), ("alertmanager_url", "Alertmanager"),
                 ("runbook_url", "Runbook"))


class NotificationPlanner:
    def __init__(self, cfg: AlertingConfig, site: str, store: AlerterStore | None,
                 on_trigger: Callable[[Incident, list[str]], None] | None = None) -> None:
        self.cfg = cfg
        self.site = site
        self.store = store
        self.on_trigger = on_trigger            # escalation hook, run after the cycle is committed
        self.notifier_of = {r.name: r.type for r in cfg.receivers}
        self.triggered: dict[str, set[str]] = defaultdict(set)  # incident -> receivers sent a trigger
        self.planned = 0

    def plan(self, inc: Incident, action: IncidentAction, root: Alarm | None, members: Sequence[Alarm], now_ns: int,
             w: CycleWrite, post_commit: list[Callable[[], None]], suffix: str = "") -> Incident:
        """`suffix` marks a later trigger of an incident already paged (its severity raised): its
        own idempotency key, and the escalation armed by the first trigger runs on unchanged."""
        sup: tuple[str, ...] = ()
        if action is IncidentAction.TRIGGER:
            matches = match_routes(self.cfg.route, inc.labels)
            receivers = [m.receiver for m in matches]
            policies = sorted({m.escalation for m in matches if m.escalation})
            sup = root.suppressed_by if root is not None else ()
            inc = replace(inc, labels={**inc.labels, "notified": "suppressed" if sup else "sent"})
            if sup:
                w.timeline.append((inc.id, entry(now_ns, TK.SUPPRESSED, f"not notified: {', '.join(sup)}",
                                                 suppressed_by=list(sup))))
            elif policies and self.on_trigger is not None and not suffix:
                post_commit.append(lambda i=inc, p=policies: self.on_trigger(i, p))
        else:
            sent = self.store.receivers_triggered(inc.id) if self.store is not None else []
            receivers = sorted(set(sent) | self.triggered.get(inc.id, set()))
        for r in receivers:
            msg = self._with_links(build_message(inc, action, self.site, root, members, r), inc, root)
            n = make_notification(inc, r, self.notifier_of.get(r, "?"), action, msg, now_ns, suppressed=bool(sup),
                                  reason=", ".join(sup), suffix=f"suppressed@{now_ns}" if sup else suffix)
            w.notifications.append(n)
            self.planned += 1
            if sup:
                continue
            if action is IncidentAction.TRIGGER:
                self.triggered[inc.id].add(r)
            w.timeline.append((inc.id, entry(now_ns, TK.NOTIFICATION, f"{action.value} queued for {r}",
                                             notification_id=n.id, receiver=r)))
        if action is IncidentAction.RESOLVE:
            self.triggered.pop(inc.id, None)
        return inc

    def _with_links(self, msg: dict, inc: Incident, root: Alarm | None) -> dict:
        links = []
        if self.cfg.console_url is not None:
            base = str(self.cfg.console_url).rstrip("/")
            links.append({"href": f"{base}/incident/{quote(inc.id, safe='')}", "text": "Open incident in dcops"})
        labels = root.labels if root is not None else {}
        for key, text in _SOURCE_LINKS:
            href = labels.get(key, "")
            if href.startswith(("http://", "https://")):
                links.append({"href": href, "text": text})
        for act in (root.proposed_repair_actions if root is not None else ()):
            if act.startswith(("http://", "https://")) and all(x["href"] != act for x in links):
                links.append({"href": act, "text": "Runbook"})
        msg["links"] = links
        return msg

    def escalate(self, inc: Incident, root: Alarm | None, members: Sequence[Alarm], targets: Mapping[str, str | None],
                 level: str, now_ns: int) -> CycleWrite:
        """Trigger escalation targets (receiver -> on-call user or None) of an unacknowledged incident."""
        w = CycleWrite()
        for r, user in targets.items():
            msg = self._with_links(build_message(inc, IncidentAction.TRIGGER, self.site, root, members, r, level=level,
                                                 oncall=user), inc, root)
            n = make_notification(inc, r, self.notifier_of.get(r, "?"), IncidentAction.TRIGGER, msg, now_ns,
                                  suffix=f"esc{level}")
            w.notifications.append(n)
            self.planned += 1
            who = f" (on call: {user})" if user else ""
            w.timeline.append((inc.id, entry(now_ns, TK.ESCALATION, f"escalation level {level}: trigger queued for {r}{who}",
                                             notification_id=n.id, receiver=r, oncall=user)))
        return w
