"""Loading runbooks from YAML (through `dcops.yamlconf`, so every error names file, line and
field) and choosing the runbooks that apply to an alarm.

    rb = load_runbook("alerts/data/runbooks/crac-failure.yaml")
    library = load_runbooks()            # the shipped ones, keyed by id
    matching = applicable(library.values(), root_alarm, kind="cooling")
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, Sequence

from dcops.alerts.runbooks.models import SECTIONS, Runbook
from dcops.alarm_types import Alarm
from dcops.yamlconf import ConfigError, ConfigProblem, parse_yaml, read_config_text, validate_with_lines

__all__ = ["DEFAULT_RUNBOOKS", "load_runbook", "runbook_from_text", "load_runbooks", "applicable", "applies"]

DEFAULT_RUNBOOKS = Path(__file__).resolve().parents[1] / "data" / "runbooks"


def load_runbook(path: str | Path) -> Runbook:
    p = Path(path)
    text = read_config_text(p)
    return runbook_from_text(text, str(p))


def runbook_from_text(text: str, file: str = "<string>") -> Runbook:
    data, lines = parse_yaml(text, file)
    if data is None:
        raise ConfigError([ConfigProblem(file, None, "", "file is empty")])
    dups = _duplicate_step_ids(data, lines, file)
    if dups:
        raise ConfigError(dups)
    return validate_with_lines(Runbook, data, lines, file)


def _duplicate_step_ids(data, lines: dict, file: str) -> list[ConfigProblem]:
    """Step ids must be unique across sections; said here so the error has the line."""
    if not isinstance(data, dict):
        return []
    seen: dict[str, str] = {}
    out = []
    for section in SECTIONS:
        steps = data.get(section)
        for i, st in enumerate(steps if isinstance(steps, list) else ()):
            sid = st.get("id") if isinstance(st, dict) else None
            if not isinstance(sid, str):
                continue
            if sid in seen:
                out.append(ConfigProblem(file, lines.get((section, i, "id")), f"{section}.{i}.id",
                                         f"step id {sid!r} is used twice (also {seen[sid]})"))
            seen.setdefault(sid, f"{section}.{i}")
    return out


def load_runbooks(paths: str | Path | Sequence[str | Path] | None = None) -> dict[str, Runbook]:
    """Runbooks from files or directories (`*.yaml` in a directory, sorted); default: the shipped
    ones. Every file is validated; all problems of all files are reported together, and a
    runbook id used by two files is an error."""
    if paths is None:
        paths = [DEFAULT_RUNBOOKS]
    elif isinstance(paths, (str, Path)):
        paths = [paths]
    files: list[Path] = []
    for p in map(Path, paths):
        files.extend(sorted(p.glob("*.yaml")) if p.is_dir() else [p])
    out: dict[str, Runbook] = {}
    where: dict[str, str] = {}
    problems: list[ConfigProblem] = []
    for f in files:
        try:
            rb = load_runbook(f)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        if rb.id in out:
            problems.append(ConfigProblem(str(f), None, "id", f"runbook id {rb.id!r} is also used by {where[rb.id]}"))
            continue
        out[rb.id], where[rb.id] = rb, str(f)
    if problems:
        raise ConfigError(problems)
    return out


def applies(rb: Runbook, alarm: Alarm, kind: str | None = None) -> bool:
    """Does `rb` apply to an incident whose root alarm is `alarm` on a component of `kind`?"""
    a = rb.applies_to
    if a.probable_causes and alarm.probable_cause not in a.probable_causes:
        return False
    kind = kind or alarm.labels.get("kind")
    if a.device_kinds and kind not in a.device_kinds:
        return False
    if a.severities and alarm.severity not in a.severities:
        return False
    if a.rules and not set(filter(None, alarm.rule.split(","))) & set(a.rules):
        return False
    if a.specific_problem is not None and not re.search(a.specific_problem, alarm.specific_problem):
        return False
    return all(alarm.labels.get(k) == v for k, v in a.labels.items())


def applicable(runbooks: Iterable[Runbook], alarm: Alarm, kind: str | None = None) -> list[Runbook]:
    """The runbooks that apply, most specific first (more matchers set), then by id."""
    def specificity(rb: Runbook) -> int:
        a = rb.applies_to
        return sum(map(bool, (a.probable_causes, a.device_kinds, a.severities, a.rules, a.specific_problem))) + len(a.labels)
    return sorted((rb for rb in runbooks if applies(rb, alarm, kind)), key=lambda rb: (-specificity(rb), rb.id))

