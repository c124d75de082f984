"""Shared fixtures: paths to test data and the third-party data in ../shared/data.

CI honesty: with `CI` set (true/1/yes), a skipped test is a failure unless its reason says
"by design:" (a test that does not apply to this parametrisation, say). A skip for a missing
server, package or data set means CI did not test what it claims; `.ci/setup` installs what the
tests need, so such a skip is a broken CI machine, not a pass. Every skip reason is listed in
the terminal summary either way.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dcops.site import load_site
from dcops.topology import build_inventory

REPO = Path(__file__).resolve().parents[1]
SMALL_SITE = REPO / "tests" / "data" / "small-site.yaml"
DEMO_SITE = REPO / "examples" / "demo-site.yaml"
SHARED_DATA = (REPO.parent / "shared" / "data").resolve()
ARTIFACTS = REPO / "artifacts"


BY_DESIGN = "by design:"


def ci_strict() -> bool:
    """True when the run is CI's: skips for missing dependencies fail the run."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # (file, line, "Skipped: reason")
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = _skip_reason(report)
    item.config.stash.setdefault(_SKIPS, []).append((report.nodeid, reason))
    if ci_strict() and BY_DESIGN not in reason:
        report.outcome = "failed"
        report.longrepr = (f"skipped under CI={os.environ.get('CI')}: {reason}\n"
                           f"(install what it needs through .ci/setup, or say '{BY_DESIGN}' in the reason"
                           " when the skip is intended)")


_SKIPS = pytest.StashKey[list]()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    skips = config.stash.get(_SKIPS, [])
    if not skips:
        return
    strict = ci_strict()
    terminalreporter.section("skip reasons" + (" (CI: only 'by design:' skips are allowed)" if strict else ""))
    for nodeid, reason in skips:
        verdict = "allowed" if BY_DESIGN in reason else ("FAILED" if strict else "skipped")
        terminalreporter.write_line(f"{verdict:8s} {nodeid}: {reason}")


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data; skips the test, naming the path, when it is absent."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"third-party data not found: {p}")
    return p


@pytest.fixture(scope="session")
def small_site():
    return load_site(SMALL_SITE)


@pytest.fixture(scope="session")
def small_inventory(small_site):
    return build_inventory(small_site)


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
