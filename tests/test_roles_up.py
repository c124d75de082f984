"""The role registry, `dcops role` and `dcops up` (embedded bus: roles as threads)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from dcops.roles import ROLES, RoleUnavailable, resolve, unavailable
from tests.conftest import SMALL_SITE


def test_registry_names_every_configurable_role():
    from dcops.settings import Settings

    roles = Settings.model_fields["roles"].annotation.__args__[0].__args__
    assert set(roles) == set(ROLES)
    assert resolve("ingest").__module__ == "dcops.ingest"


def test_unknown_or_missing_roles_are_named_with_the_reason(monkeypatch):
    with pytest.raises(RoleUnavailable, match="unknown role 'bogus'"):
        resolve("bogus")
    monkeypatch.setattr("dcops.roles.ROLES", {**ROLES, "ingest": "dcops.no_such_module:run_role"})
    reasons = unavailable(["ingest"])
    assert "cannot import dcops.no_such_module" in reasons["ingest"] and "ModuleNotFoundError" in reasons["ingest"]


def _site_with(tmp_path, settings: str):
    p = tmp_path / "site.yaml"
    p.write_text(SMALL_SITE.read_text() + "\n" + settings)
    return p


def test_up_reports_unavailable_roles_and_refuses_to_start(tmp_path, monkeypatch):
    site = _site_with(tmp_path, f"settings:\n  roles: [ingest, analytics]\n  store:\n    path: {tmp_path}/s.duckdb\n")
    monkeypatch.setattr("dcops.roles.ROLES", {**ROLES, "analytics": "analytics.not_there:run_role"})
    from dcops.cli import main

    assert main(["up", "-c", str(site)]) == 2


def test_up_runs_roles_and_stops_cleanly_on_sigterm(tmp_path):
    site = _site_with(tmp_path, f"settings:\n  roles: [ingest]\n  store:\n    path: {tmp_path}/s.duckdb\n")
    proc = subprocess.Popen([sys.executable, "-m", "dcops.cli", "up", "-c", str(site)],
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    deadline = time.monotonic() + 30  # started (the store file exists) rather than a fixed sleep: CI may be loaded
    while not (tmp_path / "s.duckdb").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    time.sleep(0.5)
    assert proc.poll() is None, proc.stderr.read()
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(30)
    err = proc.stderr.read()
    assert rc == 0, err
    assert "running ingest" in err
    assert (tmp_path / "s.duckdb").exists()


def test_role_command_rejects_bad_config(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("site: x\nhalls: 3\n")
    from dcops.cli import main

    assert main(["role", "ingest", "-c", str(bad)]) == 1
    assert "bad.yaml" in capsys.readouterr().err
