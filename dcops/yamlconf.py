"""YAML loading that remembers where every value came from, and errors that say so.

`load_yaml(path, Model)` parses YAML, validates it into a pydantic model and, when anything is
wrong, raises `ConfigError` listing each problem as `file:line: field.path: message`. Site
configs, alert rules and runbooks all load through here, so every YAML file dcops reads
reports errors the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

__all__ = ["ConfigError", "ConfigProblem", "load_yaml", "parse_yaml", "validate_with_lines"]

M = TypeVar("M", bound=BaseModel)


class ConfigProblem:
    __slots__ = ("file", "line", "field", "message")

    def __init__(self, file: str, line: int | None, field: str, message: str) -> None:
        self.file, self.line, self.field, self.message = file, line, field, message

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field or '(top level)'}: {self.message}"

    def __repr__(self) -> str:
        return f"ConfigProblem({str(self)!r})"


class ConfigError(ValueError):
    """A configuration file is wrong. `problems` lists each error with file, line and field."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))

    def report(self, heading: str | None = None, file=None) -> None:
        """Print a heading (default: how many problems) and one indented line per problem (stderr)."""
        import sys

        out = sys.stderr if file is None else file
        print(heading if heading is not None else f"{len(self.problems)} problem(s):", file=out)
        for prob in self.problems:
            print(f"  {prob}", file=out)


class _LineLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode, deep: bool = False):
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first at line {seen[key] + 1})", key_node.start_mark
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _line_index(node: yaml.Node | None, path: tuple = (), out: dict | None = None) -> dict[tuple, int]:
    """Map each path (tuple of keys / list indices) to the 1-based line where it starts."""
    if out is None:
        out = {}
    if node is None:
        return out
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            out[path + (key,)] = key_node.start_mark.line + 1
            _line_index(value_node, path + (key,), out)
            out[path + (key,)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_index(item, path + (i,), out)
    return out


def parse_yaml(text: str, file: str = "<string>") -> tuple[Any, dict[tuple, int]]:
    """Parse YAML text; returns (data, line index). YAML syntax errors become ConfigError."""
    try:
        node = yaml.compose(text, Loader=_LineLoader)
        data = yaml.load(text, Loader=_LineLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise ConfigError([ConfigProblem(file, line, "", f"YAML syntax: {exc.problem or exc}")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigProblem(file, None, "", f"YAML syntax: {exc}")]) from None
    return data, _line_index(node)


def _nearest_line(lines: dict[tuple, int], loc: tuple) -> int | None:
    loc = tuple(loc)
    while loc:
        if loc in lines:
            return lines[loc]
        loc = loc[:-1]
    return lines.get(())


def validate_with_lines(model: type[M], data: Any, lines: dict[tuple, int], file: str, context: dict | None = None) -> M:
    """Validate `data` into `model`; on failure raise ConfigError with lines and fields."""
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        problems = []
        errors = exc.errors(include_url=False)
        locs = [tuple(e["loc"]) for e in errors]
        for err in errors:
            loc0 = tuple(err["loc"])
            # pydantic also reports a too-short container when its items failed: noise.
            if err["type"] == "too_short" and any(len(o) > len(loc0) and o[: len(loc0)] == loc0 for o in locs):
                continue
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            # pydantic puts union member / model names into loc; keep only data keys
            data_loc = _data_path(data, loc)
            field = ".".join(str(p) for p in data_loc) if data_loc else ""
            msg = err["msg"]
            if msg.startswith("Value error, "):
                msg = msg[len("Value error, "):]
            if err["type"] == "extra_forbidden":
                msg = "unknown field (check the spelling)"
            problems.append(ConfigProblem(file, _nearest_line(lines, data_loc), field, msg))
        raise ConfigError(problems) from None


def _data_path(data: Any, loc: tuple) -> tuple:
    """Drop pydantic's internal loc parts (union tags, model names) that are not data keys."""
    out: list = []
    cur = data
    for part in loc:
        if isinstance(cur, dict) and part in cur:
            out.append(part)
            cur = cur[part]
        elif isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur):
            out.append(part)
            cur = cur[part]
        elif isinstance(cur, dict) and isinstance(part, str) and part not in cur and part == loc[-1]:
            out.append(part)  # a missing required field: name it
        else:
            continue
    return tuple(out)


def load_yaml(path: str | Path, model: type[M], context: dict | None = None) -> M:
    """Read, parse and validate a YAML file into `model`, with file/line/field errors."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigProblem(str(p), None, "", f"cannot read: {exc.strerror or exc}")]) from None
    data, lines = parse_yaml(text, str(p))
    if data is None:
        raise ConfigError([ConfigProblem(str(p), None, "", "file is empty")])
    return validate_with_lines(model, data, lines, str(p), context)
