"""Runbook runs attached to incidents: the API the console's Incidents page calls.

Every method takes the acting user's name and role (`viewer` < `operator` < `admin`, as the
console authenticates them) and enforces the rules here, not in the UI:
- viewers read only; starting a run, confirming, checking, skipping, acting, approving, signing
  off and aborting need `operator`;
- a flow step (prechecks, steps, verification, in that order) can run only when every earlier
  one is done or skipped; skipping needs a reason; rollback steps run in their own order at
  any time while the run is active;
- a destructive action needs a request by one person and an approval by a DIFFERENT person,
  and it may not be executed by its approver; an approval is good for one attempt;
- sign-off needs every flow step finished and the runbook's sign-off role.

Each change is one transaction: the step event, an entry on the incident timeline (kind
`runbook`) and a hash-chained audit record (`dcops.alerts.storage.audit`). Mutations of one run are
serialised by bumping the run row first (a row lock on PostgreSQL, the write lock on SQLite),
so two operators cannot both execute the same approved action. Actions run between two
transactions ("action_started", then the outcome), never inside one.

While a run is active, the runbook's `expected_alarms` are covered by silences created through
`dcops.alerts.storage.repository.Repository` (matchers on probable cause and component), so the alerter
shows them and does not page; they are expired when the run ends.

The API (all plain methods; `RunbookError` and its subclasses carry operator-ready messages,
`KeyError` names an unknown incident or run):

    reads:    suggest(incident_id) -> [Runbook];  run(run_id) -> RunView;  runs(incident_id);
              active_runs()
    lifecycle: start(incident_id, runbook_id, *, user, role) -> RunView
              sign_off(run_id, *, user, role, note="");  abort(run_id, *, user, role, reason)
    steps:    confirm(run_id, step_id, *, user, role, note)         manual steps
              check(run_id, step_id, *, user, role)                  check steps (evaluated now)
              request_approval / approve(run_id, step_id, *, user, role, note="")
              execute(run_id, step_id, *, user, role)                action steps
              skip(run_id, step_id, *, user, role, reason)

    eng = RunbookEngine(db_engine, load_runbooks(), inventory=inv, store=store)
    run = eng.start(incident_id, "crac-failure", user="alice", role="operator")
    eng.confirm(run.id, "notify-facilities", user="alice", role="operator", note="called HVAC")
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from typing import Callable, Mapping

from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dcops.alerts.storage.audit import AuditBase, AuditLog
from dcops.alerts.storage.tables import IncidentRow, TimelineRow
from dcops.alerts.storage.repository import Repository
from dcops.alerts.runbooks.checks import context_variables, evaluate_check
from dcops.alerts.runbooks.expected import expected_alarm_silences
from dcops.alerts.runbooks.executors import EXECUTORS, ActionContext, ExecutorError, ExecutorRuntime
from dcops.alerts.runbooks.loader import applicable
from dcops.alerts.runbooks.models import USER_ROLES, ActionStep, CheckStep, ManualStep, Runbook
from dcops.alerts.runbooks.state import RunView, StepEvent, derive_steps
from dcops.alerts.runbooks.tables import RunbookBase, RunRow, StepEventRow
from dcops.alarm_types import IncidentState
from dcops.store.base import Store
from dcops.topology import Inventory

__all__ = ["RunbookEngine", "RunbookError", "PermissionDenied", "ApprovalRequired", "StepNotReady"]

_NS = 1_000_000_000
_RANK = {r: i for i, r in enumerate(USER_ROLES)}


class RunbookError(ValueError):
    """The request cannot be done; the message says why (fit to show an operator)."""


class PermissionDenied(RunbookError):
    pass


class ApprovalRequired(RunbookError):
    pass


class StepNotReady(RunbookError):
    pass


def _need(role: str, at_least: str, what: str) -> None:
    if role not in _RANK:
        raise PermissionDenied(f"unknown role {role!r} (one of {', '.join(USER_ROLES)})")
    if _RANK[role] < _RANK[at_least]:
        raise PermissionDenied(f"{what} needs the {at_least} role (you are {role})")


def _user(user: str) -> str:
    if not isinstance(user, str) or not user.strip():
        raise PermissionDenied("a user name is required")
    return user.strip()


def _text(value: str, what: str) -> str:
    if not value or not value.strip():
        raise RunbookError(f"{what} is required")
    return value.strip()


def runbook_digest(rb: Runbook) -> str:
    return hashlib.sha256(json.dumps(rb.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()


class RunbookEngine:
    def __init__(self, db: Engine, runbooks: Mapping[str, Runbook], *, inventory: Inventory | None = None,
                 store: Store | None = None, executors: ExecutorRuntime | None = None, audit: AuditLog | None = None,
                 repository: Repository | None = None, clock: Callable[[], int] = time.time_ns,
                 new_id: Callable[[], str] = lambda: uuid.uuid4().hex[:16]) -> None:
        self.db = db
        self.runbooks = dict(runbooks)
        self.inventory = inventory
        self.store = store
        self.executors = executors or ExecutorRuntime()
        if self.executors.inventory is None:
            self.executors.inventory = inventory
        self.audit = audit or AuditLog(db, clock)
        self.repo = repository or Repository(db, inventory, clock=lambda: clock() / _NS)
        self.clock = clock
        self._new_id = new_id

    def ensure_schema(self) -> None:
        """Create the run and audit tables when missing (the incident tables come with Repository)."""
        RunbookBase.metadata.create_all(self.db)
        AuditBase.metadata.create_all(self.db)

    # ----- reads (any role) ----------------------------------------------------------------------
    def suggest(self, incident_id: str) -> list[Runbook]:
        """Runbooks that apply to the incident's root alarm, most specific first."""
        alarms = self.repo.incident_alarms(incident_id)
        if not alarms:
            return []
        root = alarms[0]
        kind = self.inventory.components[root.component].kind if self.inventory and root.component in self.inventory.components else None
        return applicable(self.runbooks.values(), root, kind)

    def run(self, run_id: str) -> RunView:
        with Session(self.db) as s:
            return self._view(s, self._run_row(s, run_id))

    def runs(self, incident_id: str) -> list[RunView]:
        with Session(self.db) as s:
            rows = s.scalars(select(RunRow).where(RunRow.incident_id == incident_id).order_by(RunRow.started_ns)).all()
            return [self._view(s, r) for r in rows]

    def active_runs(self) -> list[RunView]:
        with Session(self.db) as s:
            return [self._view(s, r) for r in s.scalars(select(RunRow).where(RunRow.state == "active"))]

    # ----- run lifecycle ---------------------------------------------------------------------------
    def start(self, incident_id: str, runbook_id: str, *, user: str, role: str) -> RunView:
        user = _user(user)
        _need(role, "operator", "starting a runbook")
        rb = self.runbooks.get(runbook_id)
        if rb is None:
            raise RunbookError(f"unknown runbook {runbook_id!r} (known: {', '.join(sorted(self.runbooks))})")
        inc = self.repo.get_incident(incident_id)
        if inc.state is IncidentState.CLOSED:
            raise RunbookError(f"incident {incident_id} is closed")
        root = inc.root_component or next((a.component for a in self.repo.incident_alarms(incident_id)), None)
        if not root:
            raise RunbookError(f"incident {incident_id} has no root component to run {rb.id!r} against")
        busy = [r.id for r in self.runs(incident_id) if r.state == "active" and r.runbook.id == rb.id]
        if busy:
            raise RunbookError(f"runbook {rb.id!r} is already running on incident {incident_id} (run {busy[0]})")
        run_id, now = self._new_id(), self.clock()
        variables = dict(context_variables(self.inventory, root), incident=incident_id, run=run_id)
        silences = self._silence_expected(rb, root, run_id, user, now)

        def tx(s: Session) -> None:
            s.add(RunRow(id=run_id, incident_id=incident_id, runbook_id=rb.id, runbook_version=rb.version,
                         runbook_digest=runbook_digest(rb), runbook=rb.model_dump(mode="json"), root_component=root,
                         variables=variables, state="active", started_ns=now, started_by=user, silence_ids=silences))
            s.flush()
            self._record(s, run_id, incident_id, "", "started", user, role, now,
                         f"runbook '{rb.title}' v{rb.version} started on {root}", "",
                         {"runbook": rb.id, "version": rb.version, "expected_alarm_silences": silences})
        try:
            self._tx(tx)
        except Exception:
            for sid in silences:
                self.repo.expire_silence(sid, user)
            raise
        return self.run(run_id)

    def sign_off(self, run_id: str, *, user: str, role: str, note: str = "") -> RunView:
        user = _user(user)
        _need(role, "operator", "signing off a runbook")

        def tx(s: Session) -> RunView:
            row, view = self._lock(s, run_id)
            _need(role, view.runbook.sign_off.role, "signing off this runbook")
            if view.next_step is not None:
                raise StepNotReady(f"cannot sign off: step {view.next_step.id!r} ({view.next_step.title}) is "
                                   f"{view.next_step.status}")
            if view.runbook.sign_off.distinct_from_executors:
                doers = {e.user for e in view.events if e.step_id and e.kind not in ("approved",)}
                if user in doers:
                    raise PermissionDenied(f"this runbook must be signed off by someone who ran none of its steps "
                                           f"({', '.join(sorted(doers))} did)")
            now = self.clock()
            row.state, row.ended_ns, row.ended_by = "completed", now, user
            self._record(s, run_id, row.incident_id, "", "signed_off", user, role, now,
                         f"runbook '{view.runbook.title}' signed off: {view.runbook.sign_off.statement}", note, {})
            return view
        view = self._tx(tx)
        self._end_silences(view, user)
        return self.run(run_id)

    def abort(self, run_id: str, *, user: str, role: str, reason: str) -> RunView:
        user, reason = _user(user), _text(reason, "a reason for aborting")
        _need(role, "operator", "aborting a runbook")

        def tx(s: Session) -> RunView:
            row, view = self._lock(s, run_id)
            now = self.clock()
            row.state, row.ended_ns, row.ended_by = "aborted", now, user
            self._record(s, run_id, row.incident_id, "", "aborted", user, role, now,
                         f"runbook '{view.runbook.title}' aborted: {reason}", reason, {})
            return view
        view = self._tx(tx)
        self._end_silences(view, user)
        return self.run(run_id)

    # ----- steps -----------------------------------------------------------------------------------
    def confirm(self, run_id: str, step_id: str, *, user: str, role: str, note: str) -> RunView:
        """Confirm a manual step; the note (what was done, what was seen) is required."""
        user, note = _user(user), _text(note, "a note confirming the step")
        _need(role, "operator", "confirming a step")

        def tx(s: Session) -> None:
            row, view, st = self._ready(s, run_id, step_id, ManualStep)
            self._record(s, run_id, row.incident_id, step_id, "confirmed", user, role, self.clock(),
                         f"step '{st.title}' confirmed", note, {})
        self._tx(tx)
        return self.run(run_id)

    def skip(self, run_id: str, step_id: str, *, user: str, role: str, reason: str) -> RunView:
        user, reason = _user(user), _text(reason, "a reason for skipping")
        _need(role, "operator", "skipping a step")

        def tx(s: Session) -> None:
            row, view, st = self._ready(s, run_id, step_id, None, allow_running=True)
            self._record(s, run_id, row.incident_id, step_id, "skipped", user, role, self.clock(),
                         f"step '{st.title}' skipped: {reason}", reason, {})
        self._tx(tx)
        return self.run(run_id)

    def check(self, run_id: str, step_id: str, *, user: str, role: str) -> RunView:
        """Evaluate a check step against the store now; a failed check may be retried or skipped."""
        user = _user(user)
        _need(role, "operator", "running a check")
        if self.store is None or self.inventory is None:
            raise RunbookError("checks need a telemetry store and the site inventory; none is configured")

        def tx(s: Session) -> None:
            row, view, st = self._ready(s, run_id, step_id, CheckStep)
            now = self.clock()
            res = evaluate_check(self.store, self.inventory, st.check, row.root_component, now)
            self._record(s, run_id, row.incident_id, step_id, "check_passed" if res.passed else "check_failed", user,
                         role, now, f"check '{st.title}': {res.summary}", "",
                         {"passed": res.passed, "summary": res.summary, "worst": res.worst, "samples": res.samples,
                          "components": list(res.components)})
        self._tx(tx)
        return self.run(run_id)

    def request_approval(self, run_id: str, step_id: str, *, user: str, role: str, note: str = "") -> RunView:
        """Ask for a second person's approval of a destructive action."""
        user = _user(user)
        _need(role, "operator", "requesting an action")

        def tx(s: Session) -> None:
            row, view, st = self._ready(s, run_id, step_id, ActionStep)
            if view.step(step_id).status in ("awaiting_approval", "approved"):
                raise RunbookError(f"step {step_id!r} already has a request by {view.step(step_id).requested_by}")
            self._record(s, run_id, row.incident_id, step_id, "action_requested", user, role, self.clock(),
                         f"approval requested for '{st.title}'", note, {"destructive": st.is_destructive})
        self._tx(tx)
        return self.run(run_id)

    def approve(self, run_id: str, step_id: str, *, user: str, role: str, note: str = "") -> RunView:
        """Approve a requested action. The approver must not be the person who requested it."""
        user = _user(user)
        _need(role, "operator", "approving an action")

        def tx(s: Session) -> None:
            row, view, st = self._ready(s, run_id, step_id, ActionStep)
            sv = view.step(step_id)
            if sv.status != "awaiting_approval":
                raise ApprovalRequired(f"step {step_id!r} has no pending request to approve (it is {sv.status})")
            if sv.requested_by == user:
                raise PermissionDenied(f"{user} requested '{st.title}' and cannot approve it; a second person must")
            self._record(s, run_id, row.incident_id, step_id, "approved", user, role, self.clock(),
                         f"'{st.title}' approved (requested by {sv.requested_by})", note, {"requested_by": sv.requested_by})
        self._tx(tx)
        return self.run(run_id)

    def execute(self, run_id: str, step_id: str, *, user: str, role: str) -> RunView:
        """Run an action step through its executor. Destructive ones need an approval by someone
        else than both the requester and the executor."""
        user = _user(user)
        _need(role, "operator", "running an action")

        def claim(s: Session) -> tuple[RunRow, ActionStep]:
            row, view, st = self._ready(s, run_id, step_id, ActionStep)
            sv = view.step(step_id)
            if st.is_destructive:
                if sv.status != "approved":
                    raise ApprovalRequired(f"'{st.title}' is destructive: it needs a request and a second person's "
                                           f"approval first (step is {sv.status})")
                if sv.approved_by == user:
                    raise PermissionDenied(f"{user} approved '{st.title}' and cannot also execute it")
            self._record(s, run_id, row.incident_id, step_id, "action_started", user, role, self.clock(),
                         f"action '{st.title}' started ({st.executor})", "",
                         {"executor": st.executor, "approved_by": sv.approved_by})
            return row, st
        row, st = self._tx(claim)
        ctx = ActionContext(run_id, row.incident_id, step_id, user, dict(row.variables or {}, user=user))
        try:
            res = EXECUTORS[st.executor].run(st.parsed_options(), ctx, self.executors)
            ok, output, data = res.ok, res.output, dict(res.data)
        except ExecutorError as exc:
            ok, output, data = False, str(exc), {}
        except Exception as exc:  # an executor bug must still leave a record, not a running step
            ok, output, data = False, f"{type(exc).__name__}: {exc}", {}

        def done(s: Session) -> None:
            self._lock(s, run_id)
            kind = "action_succeeded" if ok else "action_failed"
            self._record(s, run_id, row.incident_id, step_id, kind, user, role, self.clock(),
                         f"action '{st.title}' {'succeeded' if ok else 'failed'}: {output[:300]}", "",
                         {"ok": ok, "output": output, **{k: v for k, v in data.items() if k != "ok"}})
        self._tx(done)
        return self.run(run_id)

    # ----- internals -------------------------------------------------------------------------------
    def _tx(self, fn, retries: int = 5):
        for attempt in range(retries):
            try:
                with Session(self.db, expire_on_commit=False) as s, s.begin():
                    return fn(s)
            except IntegrityError:  # a concurrent audit append took our sequence number
                if attempt == retries - 1:
                    raise

    @staticmethod
    def _run_row(s: Session, run_id: str) -> RunRow:
        row = s.get(RunRow, run_id)
        if row is None:
            raise KeyError(f"no runbook run {run_id!r}")
        return row

    def _view(self, s: Session, row: RunRow) -> RunView:
        rb = Runbook.model_validate(row.runbook)
        evs = tuple(StepEvent(int(e.seq), e.run_id, e.step_id, e.kind, int(e.time_ns), e.user, e.role, e.note or "",
                              dict(e.output or {}))
                    for e in s.scalars(select(StepEventRow).where(StepEventRow.run_id == row.id).order_by(StepEventRow.seq)))
        return RunView(row.id, row.incident_id, rb, row.state, row.root_component, dict(row.variables or {}),
                       int(row.started_ns), row.started_by, row.ended_ns, row.ended_by, tuple(row.silence_ids or ()),
                       derive_steps(rb, evs), evs)

    def _lock(self, s: Session, run_id: str) -> tuple[RunRow, RunView]:
        """Serialise changes to one run: touch its row first, then read its state."""
        s.execute(update(RunRow).where(RunRow.id == run_id).values(state=RunRow.state))
        row = self._run_row(s, run_id)
        s.refresh(row)
        if row.state != "active":
            raise RunbookError(f"run {run_id} is {row.state}")
        return row, self._view(s, row)

    def _ready(self, s: Session, run_id: str, step_id: str, want: type | None, allow_running: bool = False):
        row, view = self._lock(s, run_id)
        try:
            st = view.runbook.step(step_id)
        except KeyError as exc:
            raise RunbookError(str(exc.args[0])) from None
        if want is not None and not isinstance(st, want):
            raise RunbookError(f"step {step_id!r} is a {st.type} step")
        sv = view.step(step_id)
        if sv.finished:
            raise StepNotReady(f"step {step_id!r} is already {sv.status}")
        if sv.status == "running" and not allow_running:
            raise StepNotReady(f"step {step_id!r} is running (started by {sv.last_user})")
        for prev in view.steps:
            if prev.id == step_id:
                break
            if (prev.section == "rollback") == (sv.section == "rollback") and not prev.finished:
                raise StepNotReady(f"step {step_id!r} must wait for {prev.section} step {prev.id!r} "
                                   f"({prev.title}), which is {prev.status}")
        return row, view, st

    def _record(self, s: Session, run_id: str, incident_id: str, step_id: str, kind: str, user: str, role: str,
                now: int, text: str, note: str, output: Mapping) -> None:
        s.add(StepEventRow(run_id=run_id, step_id=step_id, kind=kind, time_ns=now, user=user, role=role, note=note,
                           output=dict(output)))
        s.add(TimelineRow(incident_id=incident_id, time_ns=now, kind="runbook", text=text + (f" ({note})" if note and note not in text else ""),
                          actor=user, data={"run": run_id, "step": step_id, "event": kind}))
        s.execute(update(IncidentRow).where(IncidentRow.id == incident_id).values(updated_ns=now))
        self.audit.append(actor=user, role=role, action=f"runbook.{kind}", target_kind="runbook_run", target_id=run_id,
                          data={"incident": incident_id, "step": step_id, "note": note, "output": dict(output)},
                          session=s, time_ns=now)

    def _silence_expected(self, rb: Runbook, root: str, run_id: str, user: str, now: int) -> list[str]:
        out: list[str] = []
        for matchers, reason in expected_alarm_silences(rb, self.inventory, root):
            why = f"expected during runbook '{rb.title}' (run {run_id})" + (f": {reason}" if reason else "")
            out.append(self.repo.create_silence(matchers, now, now + int(rb.max_duration_s * _NS), user, why).id)
        return out

    def _end_silences(self, view: RunView, user: str) -> None:
        for sid in view.silence_ids:
            self.repo.expire_silence(sid, user)
