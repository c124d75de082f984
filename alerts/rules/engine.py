"""Rule files and the rule engine.

`RULE_TYPES` maps each rule `type:` to its schema and evaluator (add a rule type = add a row).
`load_rules(path)` validates a YAML rule file with `dcops.yamlconf`, so every problem names the
file, line and field; `default_rules()` loads the pack that ships with dcops
(`alerts/data/rules/default.yaml`). `RuleEngine` feeds batches, events, findings and clock
ticks to every rule's evaluator and returns `AlarmSignal`s.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Callable, Iterable, Sequence

from dcops.alerts.rules.evaluators import (AbsenceEvaluator, AnomalyEvaluator, Evaluator, EventEvaluator, RateEvaluator,
                               ThresholdEvaluator)
from dcops.alerts.rules.models import AbsenceRule, AnomalyRule, EventRule, RateRule, RuleBase, RuleFile, ThresholdRule
from dcops.alerts.alarms.signals import AlarmSignal, components_of_batch
from dcops.batch import Batch, Event
from dcops.findings import Finding
from dcops.yamlconf import ConfigError, ConfigProblem, load_yaml_text, read_config_text

__all__ = ["RULE_TYPES", "RuleType", "RuleEngine", "load_rules", "rules_from_text", "default_rules", "DEFAULT_RULES",
           "CONFIGURED", "configured_references"]

DEFAULT_RULES = Path(__file__).resolve().parents[1] / "data" / "rules" / "default.yaml"


@dataclass(frozen=True)
class RuleType:
    schema: type[RuleBase]
    evaluator: type[Evaluator]
    feeds: str  # what it consumes: samples, events or findings
    summary: str


RULE_TYPES = MappingProxyType({
    "threshold": RuleType(ThresholdRule, ThresholdEvaluator, "samples", "metric beyond a value for a duration, with hysteresis"),
    "rate": RuleType(RateRule, RateEvaluator, "samples", "metric changing faster than a rate per minute"),
    "absence": RuleType(AbsenceRule, AbsenceEvaluator, "samples", "a component stopped reporting a metric"),
    "event": RuleType(EventRule, EventEvaluator, "events", "event kinds with matching attributes (XIDs, trap OIDs)"),
    "anomaly": RuleType(AnomalyRule, AnomalyEvaluator, "findings", "analytics findings above a score"),
})


def _validate(text: str, file: str) -> tuple[RuleBase, ...]:
    rf, lines = load_yaml_text(text, file, RuleFile)
    problems, seen = [], {}
    for i, r in enumerate(rf.rules):
        if r.name in seen:
            problems.append(ConfigProblem(file, lines.get(("rules", i, "name")), f"rules.{i}.name",
                                          f"rule name {r.name!r} is used twice (also rules.{seen[r.name]})"))
        seen.setdefault(r.name, i)
    if problems:
        raise ConfigError(problems)
    return rf.rules


def rules_from_text(text: str, file: str = "<string>") -> tuple[RuleBase, ...]:
    return _validate(text, file)


def load_rules(paths: str | Path | Sequence[str | Path]) -> tuple[RuleBase, ...]:
    """Load one or more rule files; rule names must be unique across all of them."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    out: list[RuleBase] = []
    where: dict[str, str] = {}
    for p in paths:
        p = Path(p)
        text = read_config_text(p)
        for r in _validate(text, str(p)):
            if r.name in where:
                raise ConfigError([ConfigProblem(str(p), None, "rules", f"rule {r.name!r} is also defined in {where[r.name]}")])
            where[r.name] = str(p)
            out.append(r)
    return tuple(out)


# reference metrics a device may not report, and the inventory attribute the site file sets them in
CONFIGURED = MappingProxyType({"cooling_setpoint_degc": "setpoint"})


def configured_references(inventory) -> Callable[[str, str], float | None]:
    """`configured(component, metric)` for RuleEngine: the site file's value of a reference."""
    def configured(comp: str, metric: str) -> float | None:
        c = inventory.components.get(comp)
        v = None if c is None or metric not in CONFIGURED else c.attrs.get(CONFIGURED[metric])
        return None if v is None else float(v)
    return configured


def default_rules() -> tuple[RuleBase, ...]:
    return load_rules(DEFAULT_RULES)


class RuleEngine:
    """Runs every rule's evaluator. `active_of(rule_name)` returns the components that have an
    active alarm from that rule (the alarm manager answers it)."""

    def __init__(self, rules: Iterable[RuleBase], active_of: Callable[[str], set[str]],
                 configured: Callable[[str, str], float | None] | None = None) -> None:
        """`configured(component, metric)`: what the site file sets for a reference metric a
        component does not report (`configured_references`); threshold rules `relative_to` it
        fall back to it."""
        self.rules = tuple(rules)
        self.evaluators = [RULE_TYPES[r.type].evaluator(r) for r in self.rules]
        if configured is not None:
            for ev in self.evaluators:
                if getattr(ev.rule, "relative_to", None):
                    ev.configured = configured
        self._by_feed: dict[str, list[Evaluator]] = {}
        for ev in self.evaluators:
            self._by_feed.setdefault(RULE_TYPES[ev.rule.type].feeds, []).append(ev)
        self._active_of = active_of

    def on_batch(self, batch: Batch) -> list[AlarmSignal]:
        evs = [e for e in self._by_feed.get("samples", ()) if e.rule.measurement == batch.measurement]
        if not evs or not len(batch):
            return []
        comps = components_of_batch(batch.tags, len(batch))
        out: list[AlarmSignal] = []
        for ev in evs:
            out.extend(ev.on_batch(batch, comps, self._active_of(ev.rule.name)))
        return out

    def on_events(self, events: Sequence[Event]) -> list[AlarmSignal]:
        out: list[AlarmSignal] = []
        evs = self._by_feed.get("events", ())
        for e in events:
            for ev in evs:
                out.extend(ev.on_event(e, self._active_of(ev.rule.name)))
        return out

    def on_findings(self, findings: Sequence[Finding]) -> list[AlarmSignal]:
        out: list[AlarmSignal] = []
        evs = self._by_feed.get("findings", ())
        for f in findings:
            for ev in evs:
                out.extend(ev.on_finding(f, self._active_of(ev.rule.name)))
        return out

    def seed(self, current) -> None:
        """Restore what evaluators keep between calls (last report per component) from the
        current-state view after a restart."""
        for ev in self.evaluators:
            ev.seed(current)

    def absence_measurements(self) -> dict[str, float]:
        """measurement -> the longest absence (`for_s`) a rule waits for: what a restart must
        read back from the store to seed the staleness checks."""
        out: dict[str, float] = {}
        for r in self.rules:
            if r.type == "absence":
                out[r.measurement] = max(out.get(r.measurement, 0.0), float(r.for_s))
        return out

    def on_tick(self, now_ns: int) -> list[AlarmSignal]:
        out: list[AlarmSignal] = []
        for ev in self.evaluators:
            out.extend(ev.on_tick(now_ns, self._active_of(ev.rule.name)))
        return out
