"""Alert rule schemas: one frozen pydantic model per rule type, validated at the edge.

Every rule says what it watches (a catalogue metric, event kinds, or anomaly findings) and
what alarm it raises (X.733 event type, probable cause, perceived severity, specific problem,
proposed repair actions). `where` narrows a rule by topology tags, e.g. `{vendor: nvidia}`.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from dcops.alarm_types import EventType, PerceivedSeverity, ProbableCause
from dcops.catalogue import EVENT_KINDS, METRICS

__all__ = ["RuleBase", "ThresholdRule", "RateRule", "AbsenceRule", "EventRule", "AnomalyRule", "Rule", "RuleFile"]

Op = Literal[">", ">=", "<", "<="]
_RAISING = tuple(s for s in PerceivedSeverity if s is not PerceivedSeverity.CLEARED)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)


class RuleBase(_Model):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    description: str = ""
    severity: PerceivedSeverity = PerceivedSeverity.MAJOR
    event_type: EventType
    probable_cause: ProbableCause
    specific_problem: str = Field("", description="Text; may use {component}, {value}, {threshold}, {metric} and event attributes.")
    repair_actions: tuple[str, ...] = ()
    labels: dict[str, str] = Field(default_factory=dict)
    where: dict[str, str | tuple[str, ...]] = Field(default_factory=dict, description="Topology tag filter.")

    @field_validator("specific_problem")
    @classmethod
    def _named_fields_only(cls, v: str) -> str:
        from dcops.templates import template_problem

        problem = template_problem(v)
        if problem:
            raise ValueError(problem)
        return v

    @field_validator("severity")
    @classmethod
    def _not_cleared(cls, v: PerceivedSeverity) -> PerceivedSeverity:
        if v is PerceivedSeverity.CLEARED:
            raise ValueError(f"a rule cannot raise severity 'cleared'; use one of {[s.value for s in _RAISING]}")
        return v


def _check_metric(v: str) -> str:
    if v not in METRICS:
        near = sorted(m for m in METRICS if m.split("_")[0] == v.split("_")[0])[:8]
        raise ValueError(f"metric {v!r} is not in the catalogue" + (f" (similar: {', '.join(near)})" if near else ""))
    return v


class ThresholdRule(RuleBase):
    """Raise when `metric op value` holds for `for_s`; clear when it is back past `clear`
    (hysteresis: for `>` rules `clear` <= `value`, for `<` rules `clear` >= `value`).

    With `relative_to` (a metric of the same measurement, e.g. a cooling unit's setpoint) the
    rule compares `metric - relative_to`: a warm-water CDU run at 32 degC is not "hot" by a
    rule written for 18 degC air. A row without the reference uses the component's last
    reported one, else the value the site file configures (`dcops.alerts.rules.engine.CONFIGURED`)."""

    type: Literal["threshold"]
    metric: str
    op: Op
    value: float
    clear: float | None = None
    for_s: float = Field(0.0, ge=0)
    relative_to: str | None = None

    _metric = field_validator("metric")(_check_metric)

    @field_validator("relative_to")
    @classmethod
    def _reference(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None:
            return v
        _check_metric(v)
        m = info.data.get("metric")
        if m is not None and METRICS[m].measurement != METRICS[v].measurement:
            raise ValueError(f"relative_to {v!r} is reported in {METRICS[v].measurement!r}, not with {m!r} "
                             f"({METRICS[m].measurement!r}); a reference must come in the same rows")
        return v

    @field_validator("clear")
    @classmethod
    def _hysteresis(cls, v: float | None, info: ValidationInfo) -> float | None:
        op, value = info.data.get("op"), info.data.get("value")
        if v is None or op is None or value is None:
            return v
        if op in (">", ">=") and v > value:
            raise ValueError(f"clear {v} must be <= value {value} for a '{op}' rule (hysteresis)")
        if op in ("<", "<=") and v < value:
            raise ValueError(f"clear {v} must be >= value {value} for a '{op}' rule (hysteresis)")
        return v

    @property
    def measurement(self) -> str:
        return METRICS[self.metric].measurement


class RateRule(RuleBase):
    """Raise when the metric changes faster than `per_minute` (op > or <) between samples
    at least `min_interval_s` apart; clear when the rate is back within `clear_per_minute`."""

    type: Literal["rate"]
    metric: str
    op: Op = ">"
    per_minute: float
    clear_per_minute: float | None = None
    min_interval_s: float = Field(1.0, ge=0)

    _metric = field_validator("metric")(_check_metric)

    @property
    def measurement(self) -> str:
        return METRICS[self.metric].measurement


class AbsenceRule(RuleBase):
    """Raise when a component that reported `metric` has not reported it for `for_s`."""

    type: Literal["absence"]
    metric: str
    for_s: float = Field(gt=0)

    _metric = field_validator("metric")(_check_metric)

    @property
    def measurement(self) -> str:
        return METRICS[self.metric].measurement


class EventRule(RuleBase):
    """Raise on an event of one of `kinds` whose attributes match `match` (values as strings,
    e.g. `{xid: ["79", "48"]}` or `{trap_oid: ["1.3.6.1.4.1.318.0.5"]}`); clear on one of
    `clear_kinds` for the same component, or `clear_after_s` after the last match."""

    type: Literal["event"]
    kinds: tuple[str, ...] = Field(min_length=1)
    match: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    clear_kinds: tuple[str, ...] = ()
    clear_after_s: float | None = Field(None, gt=0)
    severity_from_event: bool = Field(False, description="Use the event's severity (e.g. from the XID catalogue) "
                                                         "when it is critical, major, minor or warning; "
                                                         "events of other severities raise nothing.")

    @field_validator("kinds", "clear_kinds")
    @classmethod
    def _known_kinds(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for k in v:
            if k not in EVENT_KINDS:
                raise ValueError(f"event kind {k!r} is not in the catalogue (known: {', '.join(sorted(EVENT_KINDS))})")
        return v

    @field_validator("match", mode="before")
    @classmethod
    def _stringify(cls, v):
        if isinstance(v, dict):
            return {k: tuple(str(x) for x in (vals if isinstance(vals, (list, tuple)) else [vals])) for k, vals in v.items()}
        return v


class AnomalyRule(RuleBase):
    """Raise on an analytics finding with score >= `min_score` (from `detectors`, all when
    empty; led by one of `features`, any when empty); clear when a finding for the component
    scores below `clear_score` or none above it arrived for `clear_after_s`."""

    type: Literal["anomaly"]
    detectors: tuple[str, ...] = ()
    features: tuple[str, ...] = Field((), description="the finding's leading feature (catalogue metric) is one of these")

    @field_validator("features")
    @classmethod
    def _known_features(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_check_metric(m) for m in v)
    min_score: float = Field(ge=0, le=1)
    clear_score: float | None = Field(None, ge=0, le=1)
    clear_after_s: float = Field(900.0, gt=0)
    component_kinds: tuple[str, ...] = ()

    @field_validator("clear_score")
    @classmethod
    def _clear_below(cls, v: float | None, info: ValidationInfo) -> float | None:
        if v is not None and info.data.get("min_score") is not None and v > info.data["min_score"]:
            raise ValueError(f"clear_score {v} must be <= min_score {info.data['min_score']}")
        return v


Rule = Annotated[Union[ThresholdRule, RateRule, AbsenceRule, EventRule, AnomalyRule], Field(discriminator="type")]


class RuleFile(_Model):
    rules: tuple[Rule, ...] = Field(min_length=1)
