"""Every `dcops ...` command line in the README and docs/ parses: the subcommand exists and takes
each option as written (placeholders such as NAME or site.yaml stand in for values). A renamed
option breaks this test, not a reader's first try."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from dcops.cli import COMMANDS, _build_parser, take_config
from tests.conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# placeholders whose command restricts the value (choices, numbers): a value it accepts
VALUES = {("role", "NAME"): "alerter"}


def _command_lines(path: Path) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    in_code = False
    for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.lstrip().startswith("```"):
            in_code = not in_code
            continue
        if in_code:
            for part in line.split("&&"):
                part = re.sub(r"^\s*(?:[A-Z_]+=\S+\s+)*(?:\S*/)?(?=dcops\s)", "", part)
                if part.startswith("dcops "):
                    out.append((no, part.strip()))
            continue
        for span in re.findall(r"`([^`]+)`", line):
            span = re.sub(r"^(?:\S*/)?(?=dcops\s)", "", span.strip())
            if span.startswith("dcops ") and re.match(r"dcops [a-z]", span):
                out.append((no, span))
    return out


def _argv(cmd: str) -> list[str]:
    cmd = cmd.replace("\\|", "|")
    cmd = re.sub(r"\[([^\]]*)\]", r"\1", cmd)                  # [--opt VALUE] -> --opt VALUE
    words = shlex.split(cmd, comments=True)[1:]
    words = [w.split("|")[0] if "|" in w else w for w in words]  # NAME|auto -> NAME
    if words and words[-1].endswith("..."):
        words[-1] = words[-1][:-3]
    words = [VALUES.get((words[0], w), w) for w in words if w]
    if len(words) <= 2 and not any(w.startswith("-") for w in words):
        words.append("--help")  # a command named in prose (`dcops role`, `dcops snmp discover`): it exists
    return words


CASES = [(f"{p.name}:{no}", cmd) for p in DOCS for no, cmd in _command_lines(p)]


def test_the_docs_have_command_lines():
    assert len(CASES) >= 30
    assert any("snmp poll" in c for _, c in CASES) and any(where.startswith("deploy.md") for where, _ in CASES)


@pytest.mark.parametrize("where,cmd", CASES, ids=[w for w, _ in CASES])
def test_command_line_parses(where, cmd, capsys):
    argv, config = take_config(_argv(cmd))
    chosen = next((a for a in argv if not a.startswith("-")), None)
    assert chosen in COMMANDS, f"{where}: `{cmd}`: no subcommand {chosen!r}"
    parser = _build_parser(chosen)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        if exc.code == 0 and "--help" in argv:
            return
        pytest.fail(f"{where}: `{cmd}` does not parse: {capsys.readouterr().err.strip()}")
    if config is not None:
        assert hasattr(args, "config") or hasattr(args, "site"), f"{where}: `{cmd}`: -c is not an option here"
