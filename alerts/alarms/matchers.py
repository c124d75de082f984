"""Alertmanager-style label matchers: `name="value"`, `name!=value`, `name=~regex`, `name!~regex`.

Used by silences, inhibition rules and routes. Regexes are anchored (full match), as in
Alertmanager. A label that is absent matches as the empty string.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Iterable, Mapping

from dcops.alarm_types import Matcher

__all__ = ["parse_matcher", "parse_matchers", "matches", "matches_all"]

_RE = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$')


def parse_matcher(text: str) -> Matcher:
    m = _RE.match(text)
    if not m:
        raise ValueError(f"matcher {text!r} is not of the form name=value, name!=value, name=~regex or name!~regex")
    name, op, value = m.groups()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    if op in ("=~", "!~"):
        from dcops.yamlconf import check_regex

        try:
            check_regex(value)
        except ValueError as exc:
            raise ValueError(f"matcher {text!r}: {exc}") from None
    return Matcher(name, op, value)


def parse_matchers(items: Iterable[str | Matcher]) -> tuple[Matcher, ...]:
    return tuple(i if isinstance(i, Matcher) else parse_matcher(i) for i in items)


@lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re.Pattern:
    return re.compile(pattern)


def matches(m: Matcher, labels: Mapping[str, str]) -> bool:
    v = str(labels.get(m.name, ""))
    if m.op == "=":
        return v == m.value
    if m.op == "!=":
        return v != m.value
    hit = _compiled(m.value).fullmatch(v) is not None
    return hit if m.op == "=~" else not hit


def matches_all(ms: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    return all(matches(m, labels) for m in ms)
