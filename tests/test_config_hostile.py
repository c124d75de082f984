"""Hostile config input (issue 20, failure 7): every config command refuses it with file and line,
in bounded time and memory, and never with a traceback."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from dcops.yamlconf import ConfigError, check_regex, parse_yaml
from tests.conftest import SMALL_SITE

RULE = """rules:
  - name: hot
    type: threshold
    metric: accel_temp_degc
    op: ">"
    value: 87
    severity: major
    event_type: environmentalAlarm
    probable_cause: temperatureUnacceptable
    specific_problem: "{template}"
"""


def _alias_bomb() -> str:
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 9):
        refs = ",".join([f"*l{i - 1}"] * 9)
        lines.append(f"l{i}: &l{i} [{refs}]")
    return "\n".join(lines) + "\n"


def _site_with(old: str, new: str) -> str:
    text = SMALL_SITE.read_text()
    assert old in text
    return text.replace(old, new, 1)


CASES = {  # name -> (command, file name, file bytes, expected words in the error)
    "alias bomb": (["check"], "site.yaml", _alias_bomb().encode(), "alias"),
    "deep nesting": (["check"], "site.yaml", ("a: " + "[" * 5000 + "]" * 5000 + "\n").encode(), "nest"),
    "5001-digit integer": (["check"], "site.yaml",
                           _site_with("capacity_kw: 200", "capacity_kw: " + "9" * 5001).encode(), "digits"),
    "non-UTF-8 byte": (["check"], "site.yaml", SMALL_SITE.read_bytes()[:40] + b"\xff\xfe" + SMALL_SITE.read_bytes()[40:],
                       "byte offset 40"),
    "capacity_kw .inf": (["check"], "site.yaml", _site_with("capacity_kw: 200", "capacity_kw: .inf").encode(),
                         "finite"),
    "catastrophic regex": (["rules", "alerting"], "alerting.yaml",
                           b'receivers:\n  - {name: r, type: webhook, url: "https://h.example/x", secret: "s"}\n'
                           b'route:\n  receiver: r\n  routes:\n    - matchers: [\'component=~"(a+)+$"\']\n      receiver: r\n',
                           "exponential"),
    "template reaching into objects": (["rules", "check"], "rules.yaml",
                                       RULE.format(template="{component.__class__.__mro__}").encode(),
                                       "plain field name"),
    "rule file alias bomb": (["rules", "check"], "rules.yaml", _alias_bomb().encode(), "alias"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_config_command_refuses_hostile_input_without_traceback(tmp_path, name):
    command, fname, data, words = CASES[name]
    path = tmp_path / fname
    path.write_bytes(data)
    args = [sys.executable, "-m", "dcops.cli", *command, str(path)]
    t0 = time.monotonic()
    proc = subprocess.run(args, capture_output=True, text=True, timeout=60)
    took = time.monotonic() - t0
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-2000:]
    assert "Traceback" not in out, out[-3000:]
    assert str(path) in out and words in out, out[-2000:]
    assert took < 20, f"{name}: {took:.1f}s"


def test_alias_bomb_is_refused_before_it_expands():
    t0 = time.monotonic()
    with pytest.raises(ConfigError, match="alias"):
        parse_yaml(_alias_bomb(), "bomb.yaml")
    assert time.monotonic() - t0 < 2


def test_ordinary_aliases_still_work():
    data, _ = parse_yaml("base: &b {x: 1}\nuse: *b\nn: 12345678901234567890\nf: 1.5\n", "ok.yaml")
    assert data == {"base": {"x": 1}, "use": {"x": 1}, "n": 12345678901234567890, "f": 1.5}


@pytest.mark.parametrize("pattern", ["(a+)+$", "(a*)*b", "(a|aa)+$", "(\\w+\\s?)*$", "(.*a){2,}"])
def test_catastrophic_regexes_are_refused(pattern):
    with pytest.raises(ValueError, match="exponential"):
        check_regex(pattern)


@pytest.mark.parametrize("pattern", ["^PDU-\\d+$", "(UPS|PDU)-[AB]", "a+b+c*", "(ab)+", "^gpu[0-7]$"])
def test_ordinary_regexes_pass(pattern):
    assert check_regex(pattern).pattern == pattern


def test_depth_limit_names_the_line():
    text = "a:\n" + "".join("  " * i + "- \n" for i in range(1, 3)) + "b: " + "[" * 70 + "]" * 70 + "\n"
    with pytest.raises(ConfigError, match="nested more than 64 levels"):
        parse_yaml(text, "deep.yaml")
