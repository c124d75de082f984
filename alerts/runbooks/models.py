"""The runbook schema: a method of procedure (MOP) as telecom NOCs write them, one YAML file each.

A runbook says what it is for (`applies_to`: probable causes, device kinds, severities, rule
names, alarm labels), what it does to service (`impact`), which alarms the procedure itself
will raise (`expected_alarms`: silenced and shown as expected while a run is active), and then
five ordered sections: `prechecks`, `steps`, `verification`, `rollback` and `sign_off`.

A step is one of three types:
- `manual`: an instruction the operator confirms with a note;
- `check`: a telemetry condition dcops evaluates itself through the Store, e.g. "inlet
  temperature of the rows this CRAC cools under 27 degC for 5 minutes";
- `action`: a call through one of the executors in `dcops.alerts.runbooks.executors.EXECUTORS`
  (webhook, allow-listed command, GPU power cap through its agent, node drain). Its options are
  validated against the executor's own schema when the file is loaded. Destructive actions need
  a second person's approval (the engine enforces it).

Scopes (`Scope`) are relative to the incident's root component: `of: root` (default) or a
literal inventory name, narrowed to a component `kind`: the component itself when it is of that
kind, otherwise its downstream components of that kind (the racks a PDU feeds, the rows a CRAC
cools), otherwise its upstream ones (the server of an accelerator).
"""

from __future__ import annotations

import string
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dcops.alerts.runbooks.executors import EXECUTORS, TEMPLATE_VARIABLES
from dcops.alarm_types import PerceivedSeverity, ProbableCause
from dcops.catalogue import MEASUREMENTS, METRICS

__all__ = ["Scope", "AppliesTo", "ExpectedAlarm", "CheckSpec", "ManualStep", "CheckStep", "ActionStep", "Step",
           "SignOff", "Runbook", "SECTIONS", "COMPONENT_KINDS", "KIND_TAG", "USER_ROLES", "template_names"]

SECTIONS = ("prechecks", "steps", "verification", "rollback")
COMPONENT_KINDS = ("hall", "row", "rack", "server", "accel", "ups", "pdu", "rack_pdu", "cooling", "zone", "env")
# The store tag that selects a component of each kind (zones select their rows).
KIND_TAG = {"hall": "hall", "row": "row", "zone": "row", "rack": "rack", "server": "device", "accel": "accel",
            "ups": "device", "pdu": "device", "rack_pdu": "device", "cooling": "device", "env": "device"}
USER_ROLES = ("viewer", "operator", "admin")
_ID = r"^[a-z0-9][a-z0-9_.-]*$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def template_names(text: str) -> set[str]:
    """The `{name}` placeholders of a template (ValueError on a malformed one)."""
    try:
        return {f.split(".")[0].split("[")[0] for _, f, _, _ in string.Formatter().parse(text) if f}
    except ValueError as exc:
        raise ValueError(f"template {text!r} is malformed: {exc}") from None


def _check_template(text: str) -> str:
    from dcops.templates import template_problem

    problem = template_problem(text)
    if problem:
        raise ValueError(f"{problem} in {text!r}")
    unknown = template_names(text) - set(TEMPLATE_VARIABLES)
    if unknown:
        raise ValueError(f"unknown placeholder(s) {sorted(unknown)} in {text!r}; known: {', '.join(TEMPLATE_VARIABLES)}")
    return text


class Scope(_Model):
    of: str = Field("root", min_length=1, description="'root' (the incident's root component) or an inventory name")
    kind: Literal[COMPONENT_KINDS] | None = None  # type: ignore[valid-type]


class AppliesTo(_Model):
    """All given matchers must hold for the incident's root alarm; an empty list matches anything."""

    probable_causes: tuple[ProbableCause, ...] = ()
    device_kinds: tuple[Literal[COMPONENT_KINDS], ...] = ()  # type: ignore[valid-type]
    severities: tuple[PerceivedSeverity, ...] = ()
    rules: tuple[str, ...] = ()
    labels: dict[str, str] = Field(default_factory=dict)
    specific_problem: str | None = Field(None, description="regular expression searched in the alarm's text")

    @field_validator("specific_problem")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            from dcops.yamlconf import check_regex

            check_regex(v)
        return v

    @model_validator(mode="after")
    def _something(self) -> "AppliesTo":
        if not (self.probable_causes or self.device_kinds or self.rules or self.labels):
            raise ValueError("applies_to needs at least one of probable_causes, device_kinds, rules, labels")
        return self


class ExpectedAlarm(_Model):
    """An alarm the procedure itself raises: silenced and shown as expected while the run is active."""

    probable_cause: ProbableCause
    scope: Scope = Scope()
    reason: str = ""


Comparison = Literal["<", "<=", ">", ">=", "==", "!="]


class CheckSpec(_Model):
    metric: str
    scope: Scope = Scope()
    comparison: Comparison
    threshold: float
    duration_s: float = Field(0.0, ge=0, le=86400)
    max_age_s: float = Field(120.0, gt=0, description="for duration 0: how old the newest sample may be")

    @field_validator("metric")
    @classmethod
    def _metric(cls, v: str) -> str:
        if v not in METRICS:
            near = sorted(m for m in METRICS if m.split("_")[0] == v.split("_")[0])[:8]
            raise ValueError(f"metric {v!r} is not in the catalogue" + (f" (similar: {', '.join(near)})" if near else ""))
        return v

    @model_validator(mode="after")
    def _scope_fits(self) -> "CheckSpec":
        meas = METRICS[self.metric].measurement
        if self.scope.kind is not None and KIND_TAG[self.scope.kind] not in MEASUREMENTS[meas].tags:
            raise ValueError(f"scope kind {self.scope.kind!r} cannot select {meas!r} samples (tags: "
                             f"{', '.join(MEASUREMENTS[meas].tags)}); pick a kind whose tag the measurement has")
        return self

    @property
    def measurement(self) -> str:
        return METRICS[self.metric].measurement


class _StepBase(_Model):
    id: str = Field(min_length=1, max_length=64, pattern=_ID)
    title: str = Field(min_length=1)
    notes: str = ""
    impact: str = Field("", description="what this step does to service (none, reduced capacity, outage of ...)")
    expected: str = Field("", description="the result the operator should see when the step worked")


class ManualStep(_StepBase):
    type: Literal["manual"]
    instruction: str = Field(min_length=1)


class CheckStep(_StepBase):
    type: Literal["check"]
    check: CheckSpec


class ActionStep(_StepBase):
    type: Literal["action"]
    executor: str
    options: dict[str, Any] = Field(default_factory=dict)
    destructive: bool | None = Field(None, description="default: the executor's own default")

    @field_validator("executor")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in EXECUTORS:
            raise ValueError(f"unknown executor {v!r}; known: {', '.join(EXECUTORS)}")
        return v

    @model_validator(mode="after")
    def _options(self) -> "ActionStep":
        spec = EXECUTORS[self.executor]
        try:
            opts = spec.options.model_validate(self.options)
        except Exception as exc:  # pydantic.ValidationError: name the option
            errs = getattr(exc, "errors", None)
            if errs is None:
                raise
            msgs = [f"options.{'.'.join(str(p) for p in e['loc'])}: "
                    f"{'unknown option' if e['type'] == 'extra_forbidden' else e['msg']}" for e in errs()]
            raise ValueError(f"executor {self.executor!r}: " + "; ".join(msgs)) from None
        for name, value in opts.model_dump().items():
            for text in _strings(value):
                try:
                    _check_template(text)
                except ValueError as exc:
                    raise ValueError(f"executor {self.executor!r}: options.{name}: {exc}") from None
        return self

    @property
    def is_destructive(self) -> bool:
        return EXECUTORS[self.executor].destructive if self.destructive is None else self.destructive

    def parsed_options(self) -> BaseModel:
        return EXECUTORS[self.executor].options.model_validate(self.options)


def _strings(value: Any):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)


Step = Annotated[Union[ManualStep, CheckStep, ActionStep], Field(discriminator="type")]


class SignOff(_Model):
    role: Literal["operator", "admin"] = "operator"
    distinct_from_executors: bool = Field(False, description="the signer must not have run any step")
    statement: str = "Procedure completed, service verified."


class Runbook(_Model):
    id: str = Field(min_length=1, max_length=64, pattern=_ID)
    title: str = Field(min_length=1)
    version: int = Field(1, ge=1)
    description: str = ""
    applies_to: AppliesTo
    impact: str = Field(min_length=1, description="what the procedure does to service")
    expected_alarms: tuple[ExpectedAlarm, ...] = ()
    max_duration_s: float = Field(4 * 3600.0, gt=0, le=7 * 86400, description="how long expected alarms stay silenced")
    prechecks: tuple[Step, ...] = ()
    steps: tuple[Step, ...] = Field(min_length=1)
    verification: tuple[Step, ...] = ()
    rollback: tuple[Step, ...] = ()
    sign_off: SignOff = SignOff()

    @model_validator(mode="after")
    def _unique_ids(self) -> "Runbook":
        seen: dict[str, str] = {}
        for section in SECTIONS:
            for i, st in enumerate(getattr(self, section)):
                if st.id in seen:
                    raise ValueError(f"step id {st.id!r} in {section}.{i} is used twice (also {seen[st.id]})")
                seen[st.id] = f"{section}.{i}"
        return self

    def section_of(self, step_id: str) -> str:
        for section in SECTIONS:
            if any(st.id == step_id for st in getattr(self, section)):
                return section
        raise KeyError(f"runbook {self.id!r} has no step {step_id!r}")

    def step(self, step_id: str):
        for section in SECTIONS:
            for st in getattr(self, section):
                if st.id == step_id:
                    return st
        raise KeyError(f"runbook {self.id!r} has no step {step_id!r}")

    @property
    def flow(self) -> tuple:
        """The ordered steps a run goes through (prechecks, steps, verification); rollback is apart."""
        return (*self.prechecks, *self.steps, *self.verification)
