"""Architecture rules, checked on the source: dependencies point down the flow and into dcops/.

- `dcops/` imports no stage package, except its CLI commands and service wiring;
- collectors import neither analytics, alerts nor console; analytics not alerts or console;
  alerts not console or collectors;
- the console reads through the store / alarm / incident interfaces, never a database driver or
  SQL of its own (no SQLAlchemy: its accounts and sessions go through the alerts storage);
- nothing shipped imports `tests`;
- the five top-level package names belong to the dcops distribution alone.
"""

from __future__ import annotations

import ast
import importlib.metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STAGES = ("collectors", "analytics", "alerts", "console")
WIRING = {"dcops/cli.py", "dcops/dbschema.py", "dcops/demo.py", "dcops/demo_pager.py", "dcops/roles.py",
          "dcops/wiring.py"}
FORBIDDEN = {
    "collectors": {"analytics", "alerts", "console"},
    "analytics": {"alerts", "console", "collectors"},
    "alerts": {"console", "collectors"},
    "console": {"collectors", "duckdb", "influxdb_client", "kafka", "sqlalchemy", "dcops.store.duckdb_store",
                "dcops.store.influx_store"},
}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def sources(pkg: str):
    return sorted((REPO / pkg).rglob("*.py"))


def _hits(mods: set[str], banned: set[str]) -> set[str]:
    return {m for m in mods for b in banned if m == b or m.startswith(b + ".")}


def test_core_imports_no_stage():
    bad = {}
    for path in sources("dcops"):
        rel = path.relative_to(REPO).as_posix()
        # dcops/evaluation wires every stage on simulated time, as the demo does (`dcops eval outages`)
        if rel in WIRING or rel.startswith(("dcops/commands/", "dcops/evaluation/")):
            continue
        hits = _hits(imports_of(path), {f"dcops.{s}" for s in STAGES})
        if hits:
            bad[rel] = sorted(hits)
    assert not bad, f"dcops/ core modules import stage packages: {bad}"


@pytest.mark.parametrize("pkg", sorted(FORBIDDEN))
def test_stage_dependencies_point_down_the_flow(pkg):
    bad = {}
    for path in sources(pkg):
        hits = _hits(imports_of(path), {b if "." in b or b in ("duckdb", "kafka", "influxdb_client", "sqlalchemy") else f"dcops.{b}"
                                        for b in FORBIDDEN[pkg]})
        if hits:
            bad[path.relative_to(REPO).as_posix()] = sorted(hits)
    assert not bad, f"{pkg} imports what it must not: {bad}"


def test_nothing_shipped_imports_tests():
    """The product never imports the test tree. (Benchmarks are developer tooling run from a
    checkout; they may reuse the test harness that starts real servers, e.g. Tansu and influxd.)"""
    bad = [p.relative_to(REPO).as_posix() for pkg in ("dcops", *STAGES) for p in sources(pkg)
           if _hits(imports_of(p), {"tests"})]
    assert not bad


def test_dcops_claims_one_import_name():
    """The client's folders install as `dcops.collectors`, ...: the distribution ships `dcops` alone."""
    owners = importlib.metadata.packages_distributions()
    assert set(owners.get("dcops") or ()) == {"dcops"}
    for name in STAGES:
        assert "dcops" not in (owners.get(name) or ()), f"dcops installs a top-level {name!r}"


def test_stage_packages_are_imported_through_the_dcops_namespace():
    """A bare `import collectors` works from a checkout's root only; installed, it is another project's."""
    bad = {}
    for pkg in ("dcops", *STAGES, "tests", "bench", "migrations"):
        for path in sources(pkg):
            hits = {m for m in imports_of(path) if m.split(".")[0] in STAGES}
            if hits:
                bad[path.relative_to(REPO).as_posix()] = sorted(hits)
    assert not bad, f"bare imports of the client's folders (use dcops.<folder>): {bad}"
