"""What the incident page shows of a runbook step, as pure functions of the runbook, the step's
state and the operator's role: its instruction, its impact on service, the result to expect, and
the controls that apply (a manual step is confirmed, a check is run, an action is executed, or
requested and approved first when destructive; any unfinished step may be skipped with a reason).

The engine enforces all of it again server-side; this only keeps the page from offering what
would be refused."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["StepDetail", "allowed_actions", "step_detail", "ACTION_LABELS"]

ACTION_LABELS = {"confirm": "Confirm done", "check": "Run check", "request_approval": "Request approval",
                 "approve": "Approve", "execute": "Execute", "skip": "Skip"}
_RANK = {"viewer": 0, "operator": 1, "admin": 2}
_OPS = {"<": "under", "<=": "at most", ">": "over", ">=": "at least", "==": "equal to", "!=": "not equal to"}


@dataclass(frozen=True)
class StepDetail:
    title: str
    kind: str            # manual, check, action
    status: str
    instruction: str
    impact: str
    expected: str
    notes: str = ""


def allowed_actions(step_type: str, status: str, destructive: bool, role: str | None) -> tuple[str, ...]:
    """The step actions the page offers for a step in `status` to someone of `role`."""
    if role is None or _RANK.get(role, 0) < _RANK["operator"] or status in ("done", "skipped"):
        return ()
    if step_type == "manual":
        return ("confirm", "skip")
    if step_type == "check":
        return ("check", "skip")
    if status == "running":
        return ("skip",)
    if not destructive:
        return ("execute", "skip")
    return {"awaiting_approval": ("approve", "skip"), "approved": ("execute", "skip")}.get(
        status, ("request_approval", "skip"))


def _expected(step, unit_of) -> str:
    kind = step.type
    if kind == "manual":
        return "Done as instructed; confirm with a note of what you did and saw."
    if kind == "check":
        c = step.check
        unit = unit_of(c.metric) if unit_of else ""
        where = f" on every {c.scope.kind}" if c.scope.kind else ""
        held = f" for {int(c.duration_s)} s" if c.duration_s else " (latest reading)"
        return f"{c.metric}{where} {_OPS.get(c.comparison, c.comparison)} {c.threshold:g} {unit}".rstrip() + held + "."
    opts = ", ".join(f"{k}={v}" for k, v in sorted(step.options.items()))
    return f"The {step.executor} action reports success" + (f" ({opts})" if opts else "") + "."


def _impact(step, destructive: bool, runbook_impact: str) -> str:
    if step.type == "action" and destructive:
        return ("Changes service: " + " ".join(runbook_impact.split())
                + " Needs a second person's approval before it runs.")
    if step.type == "action":
        return "Runs an automated action; no planned interruption of service."
    return "None: observation only."


def step_detail(runbook, step_view, unit_of=None) -> StepDetail:
    """Instruction, impact and expected result of one step of `runbook` (a runbook model) in the
    state `step_view` (a StepView)."""
    step = runbook.step(step_view.id)
    if step.type == "manual":
        instruction = " ".join(step.instruction.split())
    elif step.type == "check":
        instruction = "dcops evaluates this condition on the live telemetry: press Run check."
    else:
        instruction = (f"dcops runs the {step.executor} action through its executor"
                       + (": request it, have a second operator approve it, then execute." if step_view.destructive
                          else ": press Execute."))
    # what the runbook's author wrote for the step comes first; derived text fills the gaps
    written_impact = " ".join(str(getattr(step, "impact", "") or "").split())
    written_expected = " ".join(str(getattr(step, "expected", "") or "").split())
    return StepDetail(step.title, step.type, step_view.status, instruction,
                      written_impact or _impact(step, step_view.destructive, runbook.impact),
                      written_expected or _expected(step, unit_of), " ".join(step.notes.split()))
