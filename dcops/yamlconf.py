"""YAML loading that remembers where every value came from, and errors that say so.

`load_yaml(path, Model)` parses YAML, validates it into a pydantic model and, when anything is
wrong, raises `ConfigError` listing each problem as `file:line: field.path: message`. Site
configs, alert rules and runbooks all load through here, so every YAML file dcops reads
reports errors the same way.

Hostile input is refused before it costs anything (`LIMITS`): files larger than
`max_bytes`; bytes that are not UTF-8 (the error names the file, line and byte offset); more
than `max_depth` nested collections; more than `max_aliases` aliases or an expanded document of
more than `max_nodes` nodes (alias bombs); integers beyond `max_int_digits` digits; non-finite
floats (`.inf`, `.nan`), which no setting accepts. `check_regex` refuses regular expressions
that can backtrack catastrophically (a quantifier over something that is itself quantified or
has alternatives, e.g. `(a+)+$`), so a pattern from a config cannot stall a matching thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import math
import re
from dataclasses import dataclass

import yaml
from pydantic import BaseModel, ValidationError

__all__ = ["ConfigError", "ConfigProblem", "LIMITS", "check_regex", "load_yaml", "load_yaml_text", "parse_yaml",
           "problems_at", "read_config_text", "validate_with_lines"]


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 8 << 20
    max_depth: int = 64
    max_aliases: int = 1000
    max_nodes: int = 1_000_000
    max_int_digits: int = 30
    max_regex_len: int = 1000


LIMITS = Limits()

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


def _construct_int(loader: _LineLoader, node: yaml.ScalarNode):
    digits = sum(ch.isdigit() for ch in node.value)
    if digits > LIMITS.max_int_digits:
        raise yaml.constructor.ConstructorError(
            None, None, f"integer of {digits} digits is out of range (at most {LIMITS.max_int_digits})", node.start_mark)
    return yaml.constructor.SafeConstructor.construct_yaml_int(loader, node)


def _construct_float(loader: _LineLoader, node: yaml.ScalarNode):
    value = yaml.constructor.SafeConstructor.construct_yaml_float(loader, node)
    if not math.isfinite(value):
        raise yaml.constructor.ConstructorError(
            None, None, f"{node.value!r} is not a finite number (infinite and NaN values are not accepted)",
            node.start_mark)
    return value


_LineLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_LineLoader.add_constructor("tag:yaml.org,2002:float", _construct_float)


def _check_events(text: str, file: str) -> None:
    """Depth and alias limits on the event stream (the parser is iterative; the composer is not)."""
    depth = aliases = 0
    # libyaml's parser when present (iterative and fast); PyYAML's own otherwise
    for ev in yaml.parse(text, Loader=getattr(yaml, "CSafeLoader", _LineLoader)):
        if isinstance(ev, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > LIMITS.max_depth:
                raise ConfigError([ConfigProblem(file, ev.start_mark.line + 1, "",
                                                 f"nested more than {LIMITS.max_depth} levels deep")])
        elif isinstance(ev, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
        elif isinstance(ev, yaml.AliasEvent):
            aliases += 1
            if aliases > LIMITS.max_aliases:
                raise ConfigError([ConfigProblem(file, ev.start_mark.line + 1, "",
                                                 f"more than {LIMITS.max_aliases} aliases (*name)")])


def _expanded_size(root: yaml.Node | None, file: str) -> None:
    """Refuse a document whose aliases expand to more than `max_nodes` nodes (alias bombs)."""
    sizes: dict[int, int] = {}
    stack = [(root, False)] if root is not None else []
    while stack:  # post-order without recursion, each shared node counted once per use
        node, done = stack.pop()
        if id(node) in sizes:
            continue
        kids = ([n for kv in node.value for n in kv] if isinstance(node, yaml.MappingNode)
                else list(node.value) if isinstance(node, yaml.SequenceNode) else [])
        if done or not kids:
            total = 1 + sum(sizes.get(id(k), 1) for k in kids)
            sizes[id(node)] = total
            if total > LIMITS.max_nodes:
                raise ConfigError([ConfigProblem(file, node.start_mark.line + 1, "",
                                                 f"aliases expand to more than {LIMITS.max_nodes} values"
                                                 " (an alias bomb?)")])
            continue
        stack.append((node, True))
        stack.extend((k, False) for k in kids if id(k) not in sizes)


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
    if len(text) > LIMITS.max_bytes:
        raise ConfigError([ConfigProblem(file, None, "", f"larger than {LIMITS.max_bytes} bytes")])
    try:
        _check_events(text, file)
        loader = _LineLoader(text)
        try:
            node = loader.get_single_node()
            _expanded_size(node, file)
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except ConfigError:
        raise
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise ConfigError([ConfigProblem(file, line, "", f"{exc.problem or exc}")]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise ConfigError([ConfigProblem(file, line, "", f"YAML syntax: {exc.problem or exc}")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigProblem(file, None, "", f"YAML syntax: {exc}")]) from None
    except RecursionError:
        raise ConfigError([ConfigProblem(file, None, "", "nested too deeply")]) from None
    except ValueError as exc:  # e.g. Python's own integer-string conversion limit
        raise ConfigError([ConfigProblem(file, None, "", f"value out of range: {exc}")]) from None
    return data, _line_index(node)


def _nearest_line(lines: dict[tuple, int], loc: tuple) -> int | None:
    loc = tuple(loc)
    while loc:
        if loc in lines:
            return lines[loc]
        loc = loc[:-1]
    return lines.get(())


def problems_at(file: str, lines: dict[tuple, int], found) -> list[ConfigProblem]:
    """(data path, message) pairs found after validation (cross-references, duplicates) as problems
    at the nearest line of the path."""
    return [ConfigProblem(file, _nearest_line(lines, tuple(path)), ".".join(str(p) for p in path), msg)
            for path, msg in found]


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


def read_config_text(path: str | Path) -> str:
    """A config file's text: the one place dcops reads a YAML file (size and UTF-8 checked)."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            raw = f.read(LIMITS.max_bytes + 1)
    except OSError as exc:
        raise ConfigError([ConfigProblem(str(p), None, "", f"cannot read: {exc.strerror or exc}")]) from None
    if len(raw) > LIMITS.max_bytes:
        raise ConfigError([ConfigProblem(str(p), None, "", f"larger than {LIMITS.max_bytes} bytes")])
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError([ConfigProblem(str(p), line, "", f"not UTF-8: byte 0x{raw[exc.start]:02x} at byte"
                                                           f" offset {exc.start}")]) from None


def _quantified_inside(items) -> bool:
    """True if a parsed (sub)pattern contains a repeat or an alternation."""
    from re import _parser as sre  # the stdlib's own parser; no third-party engine needed

    for op, av in items:
        if op in (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT):
            if av[1] > 1:
                return True
            if _quantified_inside(av[2]):
                return True
        elif op is sre.BRANCH:
            return True
        elif op is sre.SUBPATTERN and _quantified_inside(av[3]):
            return True
        elif op in (sre.ASSERT, sre.ASSERT_NOT) and _quantified_inside(av[1]):
            return True
    return False


def _nested_repeat(items) -> bool:
    from re import _parser as sre

    for op, av in items:
        if op in (sre.MAX_REPEAT, sre.MIN_REPEAT):
            if av[1] > 1 and _quantified_inside(av[2]):
                return True
            if _nested_repeat(av[2]):
                return True
        elif op is sre.BRANCH and any(_nested_repeat(b) for b in av[1]):
            return True
        elif op is sre.SUBPATTERN and _nested_repeat(av[3]):
            return True
        elif op in (sre.ASSERT, sre.ASSERT_NOT) and _nested_repeat(av[1]):
            return True
    return False


def check_regex(pattern: str) -> re.Pattern:
    """Compile a regular expression from a config, refusing ones that can backtrack catastrophically.

    Raises ValueError (pydantic reports it with file and line) for a bad or dangerous pattern.
    """
    from re import _parser as sre

    if not isinstance(pattern, str):
        raise ValueError("a regular expression must be text")
    if len(pattern) > LIMITS.max_regex_len:
        raise ValueError(f"regular expression longer than {LIMITS.max_regex_len} characters")
    try:
        compiled = re.compile(pattern)
        parsed = sre.parse(pattern)
    except re.error as exc:
        raise ValueError(f"bad regular expression {pattern!r}: {exc}") from None
    if _nested_repeat(list(parsed)):
        raise ValueError(f"regular expression {pattern!r} repeats a group that itself repeats or has"
                         " alternatives; it can take exponential time (write it without the nested repeat)")
    return compiled


def load_yaml(path: str | Path, model: type[M], context: dict | None = None) -> M:
    """Read, parse and validate a YAML file into `model`, with file/line/field errors."""
    p = Path(path)
    return load_yaml_text(read_config_text(p), str(p), model, context)[0]


def load_yaml_text(text: str, file: str, model: type[M], context: dict | None = None, *,
                   empty: Any = None) -> tuple[M, dict[tuple, int]]:
    """Parse and validate YAML text into `model`: (the model, the line index for later checks). An
    empty document is refused, or read as `empty` when one is given (e.g. `{}`: all defaults)."""
    data, lines = parse_yaml(text, file)
    if data is None:
        if empty is None:
            raise ConfigError([ConfigProblem(file, None, "", "file is empty")])
        data = empty
    return validate_with_lines(model, data, lines, file, context), lines
