"""Under CI a skip for a missing dependency fails the run; "by design:" skips are allowed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CONFTEST = Path(__file__).with_name("conftest.py")

SAMPLE = '''
import pytest

def test_passes():
    assert True

def test_missing_server():
    pytest.skip("influxd not installed")

@pytest.mark.skipif(True, reason="snmpget not installed")
def test_missing_tool():
    pass

def test_not_applicable():
    pytest.skip("by design: TRUNCATE is a PostgreSQL statement")

@pytest.mark.xfail(reason="known bug", strict=True)
def test_xfail():
    assert False
'''


def _run(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess:
    (tmp_path / "conftest.py").write_text(CONFTEST.read_text())
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rN", str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_without_ci_skips_pass_and_are_listed(tmp_path):
    r = _run(tmp_path, None)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 passed, 3 skipped, 1 xfailed" in r.stdout
    assert "skipped  test_sample.py::test_missing_server: influxd not installed" in r.stdout
    assert "allowed  test_sample.py::test_not_applicable" in r.stdout


def test_under_ci_a_missing_dependency_fails(tmp_path):
    r = _run(tmp_path, "true")
    assert r.returncode == 1, r.stdout + r.stderr
    # a skip in the call phase becomes a failure, one in setup (skipif) an error: both fail the run
    assert "1 failed, 1 passed, 1 skipped, 1 xfailed" in r.stdout and "1 error" in r.stdout
    assert "FAILED   test_sample.py::test_missing_server: influxd not installed" in r.stdout
    assert "FAILED   test_sample.py::test_missing_tool: snmpget not installed" in r.stdout
    assert "allowed  test_sample.py::test_not_applicable: by design:" in r.stdout
    assert "skipped under CI=true: influxd not installed" in r.stdout


def test_ci_false_is_not_ci(tmp_path):
    assert _run(tmp_path, "false").returncode == 0
