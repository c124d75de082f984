"""A non-editable install (a wheel, as the Docker image has) carries what the defaults need: the
demo and evaluation sites, the Alembic migrations, the license; nothing points into tests/ or the
source tree."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "-v", "-w", str(out)],
                       capture_output=True, text=True, timeout=300)
    log = r.stdout + r.stderr
    assert r.returncode == 0, log[-3000:]
    assert "running bdist_wheel" in log  # the build's own output is in the log, so are its warnings
    for warning in ("SetuptoolsDeprecationWarning", "would be ignored", "SetuptoolsWarning"):
        assert warning not in log, warning  # the TOML-table license, package discovery
    wheel = next(out.glob("dcops-*.whl"))
    target = out / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return wheel, target


def _py(target: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(target))
    env.pop("DCOPS_DATABASE_URL", None)
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_wheel_holds_the_default_files(installed):
    wheel, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"dcops/data/sites/demo-site.yaml", "dcops/data/sites/small-site.yaml", "dcops/migrations/env.py",
            "dcops/migrations/script.py.mako", "dcops/migrations/versions/0001_initial.py"} <= names
    assert any(n.endswith("dist-info/licenses/LICENSE") for n in names)
    with zipfile.ZipFile(wheel) as z:  # contents, not links
        assert z.read("dcops/data/sites/demo-site.yaml") == (REPO / "examples" / "demo-site.yaml").read_bytes()


def test_defaults_resolve_inside_the_install(installed, tmp_path):
    _, target = installed
    r = _py(target, tmp_path, "-c",
            "import dcops, dcops.commands.demo as d, dcops.analytics.scenarios as s\n"
            "from dcops.dbschema import migrations_dir\n"
            "print(dcops.__file__); print(d.DEFAULT_SITE); print(s.SMALL_SITE); print(migrations_dir())")
    assert r.returncode == 0, r.stderr
    paths = r.stdout.split()
    assert all(p.startswith(str(target)) for p in paths), paths
    assert all(Path(p).exists() for p in paths)
    r = _py(target, tmp_path, "-m", "dcops.cli", "check", paths[1])
    assert r.returncode == 0 and "OK" in r.stdout, r.stderr
    r = _py(target, tmp_path, "-m", "dcops.cli", "db", "upgrade", "--db", f"sqlite:///{tmp_path / 'd.sqlite'}")
    assert r.returncode == 0 and "upgraded" in r.stdout, r.stderr
