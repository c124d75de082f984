"""Layering: the alarm vocabulary depends on nothing; alerts depends only on dcops."""

from __future__ import annotations

import ast
import sys

from tests.conftest import REPO


def _imports(path) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


def test_alarm_types_is_stdlib_only():
    assert _imports(REPO / "dcops" / "alarm_types.py") <= set(sys.stdlib_module_names) | {"__future__"}


def test_alerts_imports_no_other_stage():
    for path in (REPO / "alerts").rglob("*.py"):
        bad = _imports(path) & {"console", "collectors", "analytics", "tests"}
        assert not bad, f"{path.relative_to(REPO)} imports {bad}"
