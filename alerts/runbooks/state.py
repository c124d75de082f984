"""What a run looks like now, derived (purely) from its runbook and its step events.

Step status follows the last event of the step:
  confirmed | check_passed | action_succeeded -> done;   skipped -> skipped;
  check_failed | action_failed -> failed (may be retried or skipped);
  action_requested -> awaiting_approval;  approved -> approved;  action_started -> running.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

from dcops.alerts.runbooks.models import SECTIONS, ActionStep, Runbook

__all__ = ["StepEvent", "StepView", "RunView", "derive_steps", "STEP_EVENT_KINDS", "RUN_EVENT_KINDS"]

_STATUS_OF = {"confirmed": "done", "check_passed": "done", "action_succeeded": "done", "skipped": "skipped",
              "check_failed": "failed", "action_failed": "failed", "action_requested": "awaiting_approval",
              "approved": "approved", "action_started": "running"}
STEP_EVENT_KINDS = tuple(_STATUS_OF)
RUN_EVENT_KINDS = ("started", "signed_off", "aborted")


@dataclass(frozen=True)
class StepEvent:
    seq: int
    run_id: str
    step_id: str
    kind: str
    time_ns: int
    user: str
    role: str
    note: str = ""
    output: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class StepView:
    id: str
    section: str
    type: str
    title: str
    status: str                      # pending, done, skipped, failed, awaiting_approval, approved, running
    destructive: bool = False
    last_user: str | None = None
    last_time_ns: int | None = None
    note: str = ""
    output: Mapping[str, object] = field(default_factory=dict)
    requested_by: str | None = None
    approved_by: str | None = None
    attempts: int = 0

    @property
    def finished(self) -> bool:
        return self.status in ("done", "skipped")


@dataclass(frozen=True)
class RunView:
    id: str
    incident_id: str
    runbook: Runbook
    state: str                       # active, completed, aborted
    root_component: str
    variables: Mapping[str, str]
    started_ns: int
    started_by: str
    ended_ns: int | None
    ended_by: str | None
    silence_ids: tuple[str, ...]
    steps: tuple[StepView, ...]
    events: tuple[StepEvent, ...]

    def step(self, step_id: str) -> StepView:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(f"run {self.id} (runbook {self.runbook.id}) has no step {step_id!r}")

    @property
    def next_step(self) -> StepView | None:
        """The first unfinished step of the flow (prechecks, steps, verification)."""
        for s in self.steps:
            if s.section != "rollback" and not s.finished:
                return s
        return None

    @property
    def ready_to_sign(self) -> bool:
        return self.state == "active" and self.next_step is None


def derive_steps(rb: Runbook, events: Sequence[StepEvent]) -> tuple[StepView, ...]:
    by_step: dict[str, list[StepEvent]] = {}
    for e in events:
        if e.step_id:
            by_step.setdefault(e.step_id, []).append(e)
    out = []
    for section in SECTIONS:
        for st in getattr(rb, section):
            evs = by_step.get(st.id, [])
            destructive = isinstance(st, ActionStep) and st.is_destructive
            if not evs:
                out.append(StepView(st.id, section, st.type, st.title, "pending", destructive))
                continue
            last = evs[-1]
            requested_by = approved_by = None
            for e in evs:  # the request/approval in force (reset by each attempt)
                if e.kind == "action_requested":
                    requested_by, approved_by = e.user, None
                elif e.kind == "approved":
                    approved_by = e.user
                elif e.kind in ("action_succeeded", "action_failed"):
                    requested_by = approved_by = None
            attempts = sum(e.kind in ("check_passed", "check_failed", "action_succeeded", "action_failed") for e in evs)
            out.append(StepView(st.id, section, st.type, st.title, _STATUS_OF[last.kind], destructive, last.user,
                                last.time_ns, last.note, dict(last.output), requested_by, approved_by, attempts))
    return tuple(out)
