"""Rule evaluators: one small class per rule type, fed batches, events, findings and ticks.

Each evaluator keeps only what its rule type needs between calls (when a condition started,
the previous sample for a rate, when a component last reported) and emits level-based
`AlarmSignal`s. `active` is the set of components that currently have an alarm from this
rule (the manager knows; after a restart it is loaded from the database), so evaluators only
send a clear for something that is raised, and only raise what is not already raised.

Batches are evaluated column-wise: the comparison runs on the whole array, Python touches
only the rows whose state changes.
"""

from __future__ import annotations

import operator
from typing import Callable, Mapping

import numpy as np

from dcops.alerts.rules.models import AbsenceRule, AnomalyRule, EventRule, RateRule, RuleBase, ThresholdRule
from dcops.alerts.alarms.signals import AlarmSignal, component_of, components_of_batch, safe_format
from dcops.alarm_types import PerceivedSeverity
from dcops.batch import Batch, Event
from dcops.findings import Finding
from dcops.store.base import StoreError

__all__ = ["Evaluator", "ThresholdEvaluator", "RateEvaluator", "AbsenceEvaluator", "EventEvaluator", "AnomalyEvaluator"]

_OPS: Mapping[str, Callable] = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}
_NS = 1_000_000_000
_EVENT_SEVERITY = {s.value: s for s in (PerceivedSeverity.CRITICAL, PerceivedSeverity.MAJOR, PerceivedSeverity.MINOR,
                                        PerceivedSeverity.WARNING)}


def _where_mask(rule: RuleBase, tags: Mapping[str, np.ndarray], n: int) -> np.ndarray:
    mask = np.ones(n, dtype=bool)
    for k, want in rule.where.items():
        col = tags.get(k)
        if col is None:
            return np.zeros(n, dtype=bool)
        mask &= np.isin(col, [want] if isinstance(want, str) else list(want))
    if "index" in tags and "index" not in rule.where:
        mask &= tags["index"] == ""  # totals rows only, unless the rule asks for phases/outlets
    return mask


def _where_ok(rule: RuleBase, tags: Mapping[str, str]) -> bool:
    for k, want in rule.where.items():
        v = tags.get(k)
        if v is None or (v != want if isinstance(want, str) else v not in want):
            return False
    return True


class Evaluator:
    """Base: turns a rule's alarm description into signals. Subclasses override the feeds."""

    def __init__(self, rule: RuleBase) -> None:
        self.rule = rule

    def signal(self, time_ns: int, component: str, active: bool, tags: Mapping[str, str] | None = None,
               severity: PerceivedSeverity | None = None, **fmt) -> AlarmSignal:
        r = self.rule
        labels = {k: str(v) for k, v in (tags or {}).items() if v != ""}
        labels.update(r.labels)
        return AlarmSignal(
            time_ns=int(time_ns), component=component, rule=r.name, active=active, severity=severity or r.severity,
            event_type=r.event_type, probable_cause=r.probable_cause,
            specific_problem=safe_format(r.specific_problem, component=component, **fmt) or r.name,
            additional_text=r.description, repair_actions=r.repair_actions, labels=labels,
        )

    def on_batch(self, batch: Batch, comps: np.ndarray, active: set[str]) -> list[AlarmSignal]:
        return []

    def on_event(self, event: Event, active: set[str]) -> list[AlarmSignal]:
        return []

    def on_finding(self, finding: Finding, active: set[str]) -> list[AlarmSignal]:
        return []

    def on_tick(self, now_ns: int, active: set[str]) -> list[AlarmSignal]:
        return []

    def seed(self, current) -> None:
        """After a restart: learn what this rule keeps between calls from the current-state
        view (`dcops.store.current`), where the rule needs it."""


def _row_tags(batch: Batch, i: int) -> dict[str, str]:
    return {k: str(v[i]) for k, v in batch.tags.items()}


class ThresholdEvaluator(Evaluator):
    rule: ThresholdRule

    def __init__(self, rule: ThresholdRule) -> None:
        super().__init__(rule)
        self._since: dict[str, int] = {}
        c = rule.value if rule.clear is None else rule.clear
        self._raise = lambda v: _OPS[rule.op](v, rule.value)
        # back past the clear level: strictly on the other side of it
        self._clear = (lambda v: v < c) if rule.op in (">", ">=") else (lambda v: v > c)
        self._ref: dict[str, float] = {}  # component -> last reported reference (relative_to)
        self.configured: Callable[[str, str], float | None] = lambda comp, metric: None

    def _references(self, batch, comps) -> np.ndarray:
        r = self.rule
        ref = batch.fields.get(r.relative_to)
        ref = np.full(len(batch), np.nan) if ref is None else np.asarray(ref, dtype=float)
        last = self._ref
        for i in np.flatnonzero(~np.isnan(ref)):
            last[comps[i]] = float(ref[i])
        missing = np.flatnonzero(np.isnan(ref))
        if len(missing):
            ref = ref.copy()
            for i in missing:
                v = last.get(comps[i])
                if v is None:
                    v = self.configured(comps[i], r.relative_to)
                ref[i] = np.nan if v is None else v
        return ref

    def on_batch(self, batch, comps, active):
        r = self.rule
        if batch.measurement != r.measurement or r.metric not in batch.fields:
            return []
        raw = batch.fields[r.metric]
        ref = self._references(batch, comps) if r.relative_to else None
        vals = raw if ref is None else raw - ref
        ok = _where_mask(r, batch.tags, len(batch)) & ~np.isnan(vals)
        with np.errstate(invalid="ignore"):
            hot = ok & self._raise(vals)
            cool = ok & self._clear(vals)
        out = []
        since = self._since
        hot_idx = np.flatnonzero(hot)
        for i in hot_idx:
            comp = comps[i]
            t = int(batch.time_ns[i])
            start = since.setdefault(comp, t)
            if comp not in active and (t - start) >= r.for_s * _NS:
                out.append(self.signal(t, comp, True, _row_tags(batch, i), **self._fmt(raw, ref, i)))
        # the condition must hold continuously: anything evaluated and not hot restarts the clock
        not_hot = ok & ~hot
        if since:
            for comp in set(comps[not_hot].tolist()) & since.keys():
                del since[comp]
        if active:
            cool_idx = np.flatnonzero(cool)
            for i in cool_idx:
                comp = comps[i]
                if comp in active:
                    out.append(self.signal(int(batch.time_ns[i]), comp, False, _row_tags(batch, i), **self._fmt(raw, ref, i)))
        return out

    def _fmt(self, raw, ref, i: int) -> dict:
        """What the text may name: the reading, and the level it crossed (the reference plus the
        rule's margin for a relative rule, so the page reads in the unit's own terms)."""
        r = self.rule
        if ref is None:
            return {"value": float(raw[i]), "threshold": r.value, "metric": r.metric}
        return {"value": float(raw[i]), "threshold": float(ref[i]) + r.value, "reference": float(ref[i]), "metric": r.metric}


class RateEvaluator(Evaluator):
    rule: RateRule

    def __init__(self, rule: RateRule) -> None:
        super().__init__(rule)
        self._last: dict[str, tuple[int, float]] = {}

    def on_batch(self, batch, comps, active):
        r = self.rule
        if batch.measurement != r.measurement or r.metric not in batch.fields:
            return []
        vals = batch.fields[r.metric]
        ok = _where_mask(r, batch.tags, len(batch)) & ~np.isnan(vals)
        out = []
        clear_at = r.per_minute if r.clear_per_minute is None else r.clear_per_minute
        up = r.op in (">", ">=")
        for i in np.flatnonzero(ok):
            comp, t, v = comps[i], int(batch.time_ns[i]), float(vals[i])
            prev = self._last.get(comp)
            if prev is not None and (t - prev[0]) < r.min_interval_s * _NS:
                continue
            self._last[comp] = (t, v)
            if prev is None or t <= prev[0]:
                continue
            rate = (v - prev[1]) / ((t - prev[0]) / _NS) * 60.0
            if _OPS[r.op](rate, r.per_minute):
                if comp not in active:
                    out.append(self.signal(t, comp, True, _row_tags(batch, i), value=rate, threshold=r.per_minute, metric=r.metric))
            elif comp in active and ((rate < clear_at) if up else (rate > clear_at)):
                out.append(self.signal(t, comp, False, _row_tags(batch, i), value=rate, threshold=r.per_minute, metric=r.metric))
        return out


class AbsenceEvaluator(Evaluator):
    rule: AbsenceRule

    def __init__(self, rule: AbsenceRule) -> None:
        super().__init__(rule)
        self._seen: dict[str, int] = {}
        self._tags: dict[str, dict[str, str]] = {}

    def on_batch(self, batch, comps, active):
        r = self.rule
        if batch.measurement != r.measurement or r.metric not in batch.fields:
            return []
        present = _where_mask(r, batch.tags, len(batch)) & ~np.isnan(batch.fields[r.metric])
        out = []
        t_max = batch.time_ns
        for i in np.flatnonzero(present):
            comp = comps[i]
            if comp not in self._seen:
                self._tags[comp] = _row_tags(batch, i)
            self._seen[comp] = int(t_max[i])
            if comp in active:
                out.append(self.signal(int(t_max[i]), comp, False, self._tags[comp], metric=r.metric))
        return out

    def seed(self, current) -> None:
        """When each component last reported the metric, from the current-state view, so one
        that went silent before a restart is still found absent after it."""
        r = self.rule
        try:
            b = current.read(r.measurement, [r.metric], max_age_s=366 * 86400.0)
        except StoreError:  # the metric was never seen
            return
        present = _where_mask(r, b.tags, len(b)) & ~np.isnan(b.fields[r.metric])
        comps = components_of_batch(b.tags, len(b))
        for i in np.flatnonzero(present):
            comp, t = comps[i], int(b.time_ns[i])
            if t > self._seen.get(comp, -1):
                self._seen[comp] = t
                self._tags.setdefault(comp, _row_tags(b, i))

    def on_tick(self, now_ns, active):
        r = self.rule
        limit = r.for_s * _NS
        return [
            self.signal(now_ns, comp, True, self._tags.get(comp), metric=r.metric, value=(now_ns - t) / _NS, threshold=r.for_s)
            for comp, t in self._seen.items() if now_ns - t > limit and comp not in active
        ]


class EventEvaluator(Evaluator):
    rule: EventRule

    def __init__(self, rule: EventRule) -> None:
        super().__init__(rule)
        self._last: dict[str, tuple[int, dict]] = {}

    def _matches(self, e: Event) -> bool:
        for k, allowed in self.rule.match.items():
            if str(e.attributes.get(k, e.target.get(k, ""))) not in allowed:
                return False
        return _where_ok(self.rule, e.target)

    def on_event(self, event, active):
        r = self.rule
        comp = component_of(event.target)
        if not comp:
            return []
        if event.kind in r.kinds and self._matches(event):
            sev = None
            if r.severity_from_event:
                sev = _EVENT_SEVERITY.get(event.severity)
                if sev is None:
                    return []
            self._last[comp] = (event.time_ns, dict(event.target))
            return [self.signal(event.time_ns, comp, True, event.target, severity=sev, message=event.message, kind=event.kind,
                                **{k: v for k, v in event.attributes.items() if isinstance(k, str) and k.isidentifier()})]
        if event.kind in r.clear_kinds and (comp in active or comp in self._last):
            self._last.pop(comp, None)
            return [self.signal(event.time_ns, comp, False, event.target, message=event.message, kind=event.kind)]
        return []

    def on_tick(self, now_ns, active):
        r = self.rule
        if r.clear_after_s is None:
            return []
        limit = r.clear_after_s * _NS
        out = []
        for comp in [c for c, (t, _) in self._last.items() if now_ns - t > limit]:
            _, tags = self._last.pop(comp)
            if comp in active:
                out.append(self.signal(now_ns, comp, False, tags))
        # after a restart we may hold alarms we never saw raised: age them out from now on
        for comp in active - self._last.keys():
            self._last[comp] = (now_ns, {})
        return out


class AnomalyEvaluator(Evaluator):
    rule: AnomalyRule

    def __init__(self, rule: AnomalyRule) -> None:
        super().__init__(rule)
        self._last: dict[str, tuple[int, dict]] = {}

    def on_finding(self, f, active):
        r = self.rule
        if (r.detectors and f.detector not in r.detectors) or not _where_ok(r, f.target):
            return []
        if r.features and not (f.contributions and f.contributions[0].feature in r.features):
            return []
        if r.component_kinds and str(f.attributes.get("kind", "")) not in r.component_kinds:
            return []
        comp = f.component
        if f.score >= r.min_score:
            self._last[comp] = (f.time_ns, dict(f.target))
            if comp in active:
                return []
            return [self.signal(f.time_ns, comp, True, f.target, value=f.score, threshold=r.min_score,
                                detector=f.detector, explanation=f.explanation)]
        clear = r.min_score if r.clear_score is None else r.clear_score
        if f.score < clear and comp in active:
            self._last.pop(comp, None)
            return [self.signal(f.time_ns, comp, False, f.target, value=f.score, detector=f.detector)]
        return []

    def on_tick(self, now_ns, active):
        limit = self.rule.clear_after_s * _NS
        out = []
        for comp in [c for c, (t, _) in self._last.items() if now_ns - t > limit]:
            _, tags = self._last.pop(comp)
            if comp in active:
                out.append(self.signal(now_ns, comp, False, tags))
        for comp in active - self._last.keys():
            self._last[comp] = (now_ns, {})
        return out
