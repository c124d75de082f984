"""Message templates from config files (`{component} at {value}`): named fields only.

A template may name fields and give a format spec or conversion (`{value:.1f}`, `{metric!r}`);
it may not reach into objects (`{component.__class__.__mro__}`, `{labels[x]}`), so a rule file
cannot read attributes of whatever the renderer holds. `template_problem` is the load-time
check (the config error names the file and line); `render` is the run-time renderer, which
leaves unknown or refused placeholders as written and never raises.
"""

from __future__ import annotations

import re
import string
from typing import Iterable, Mapping

__all__ = ["render", "template_fields", "template_problem"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FORMATTER = string.Formatter()


def template_fields(template: str) -> list[str]:
    """The field names a template uses, as written (ValueError for a malformed template)."""
    return [f for _, f, _, _ in _FORMATTER.parse(template) if f is not None]


def template_problem(template: str, allowed: Iterable[str] | None = None) -> str | None:
    """Why a template is refused (None if it is fine)."""
    try:
        parsed = list(_FORMATTER.parse(template))
    except ValueError as exc:
        return f"malformed template: {exc}"
    allowed = set(allowed) if allowed is not None else None
    for _, name, spec, _ in parsed:
        if name is None:
            continue
        if not _NAME.match(name):
            return (f"placeholder {{{name}}} is not a plain field name; templates may use named fields"
                    " only (no attributes, indexes or positional fields)")
        if allowed is not None and name not in allowed:
            return f"unknown placeholder {{{name}}} (known: {', '.join(sorted(allowed))})"
        if spec and "{" in spec:
            return f"placeholder {{{name}}} has a nested field in its format spec"
    return None


def render(template: str, values: Mapping[str, object]) -> str:
    """Fill named fields; anything else (unknown, attribute access, bad spec) is left as written."""
    if not template:
        return ""
    try:
        parsed = list(_FORMATTER.parse(template))
    except ValueError:
        return template
    out = []
    for literal, name, spec, conv in parsed:
        out.append(literal)
        if name is None:
            continue
        raw = "{" + name + (f"!{conv}" if conv else "") + (f":{spec}" if spec else "") + "}"
        if not _NAME.match(name) or name not in values or (spec and "{" in spec):
            out.append(raw)
            continue
        value = values[name]
        try:
            if conv == "r":
                value = repr(value)
            elif conv == "s":
                value = str(value)
            elif conv == "a":
                value = ascii(value)
            out.append(format(value, spec or ""))
        except (ValueError, TypeError):
            out.append(raw)
    return "".join(out)
