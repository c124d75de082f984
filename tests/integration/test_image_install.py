"""The image's build stage, outside Docker: the Dockerfile's own `pip install` line run in a fresh
virtualenv on a copy of what the image copies, then the installed `dcops` used from elsewhere
(every role importable, package data present, the compose site config accepted). No Docker
engine runs here; this is the part of `docker build` that can fail for dcops's own reasons."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import venv

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

DOCKERFILE = REPO / "docker" / "Dockerfile"


def _copied_paths() -> list[str]:
    """The repository paths the build stage COPYs (relative, as in the Dockerfile)."""
    build = DOCKERFILE.read_text().split(" AS runtime")[0]
    out = []
    for line in build.splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            out += line.split()[1:-1]
    return out


def _pip_line() -> str:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    line = next(ln for ln in text.splitlines() if ln.startswith("RUN ") and "pip install" in ln)
    return line[4:].split("&&")[0].strip()


def test_the_dockerfile_install_works_in_a_fresh_virtualenv(tmp_path):
    src = tmp_path / "src"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "--", *_copied_paths()], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        if "__pycache__" in f or not (REPO / f).is_file():
            continue
        (src / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / f, src / f)
    env_dir = tmp_path / "opt-dcops"
    venv.create(env_dir, with_pip=True)
    pip = _pip_line()
    assert "--constraint docker/constraints.txt" in pip and pip.endswith(" /src"), pip
    argv = [a.replace("/opt/dcops", str(env_dir)) for a in shlex.split(pip)]
    argv = [str(src) if a == "/src" else a for a in argv]
    out = subprocess.run(argv, cwd=src, capture_output=True, text=True, timeout=1500,
                         env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    assert out.returncode == 0, out.stderr[-4000:]

    dcops = str(env_dir / "bin" / "dcops")
    elsewhere = tmp_path / "run"
    elsewhere.mkdir()
    version = subprocess.run([dcops, "--version"], capture_output=True, text=True, cwd=elsewhere, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("dcops "), version.stderr
    probe = ("from dcops.roles import ROLES, unavailable; from dcops.collectors.snmp_profiles import default_profiles;"
             "import dcops; assert 'site-packages' in dcops.__file__, dcops.__file__;"
             "print(sorted(unavailable(list(ROLES)).items()), len(default_profiles()))")
    out = subprocess.run([str(env_dir / "bin" / "python"), "-c", probe], capture_output=True, text=True,
                         cwd=elsewhere, timeout=120)
    assert out.returncode == 0, out.stderr
    missing, profiles = out.stdout.rsplit(" ", 1)
    assert missing == "[]", f"roles not available in the image: {missing}"
    assert int(profiles) > 0
    check = subprocess.run([dcops, "check", str(REPO / "docker" / "site.yaml")], capture_output=True, text=True,
                           cwd=elsewhere, timeout=60,
                           env={**os.environ, "DCOPS_INFLUX_TOKEN": "t", "DCOPS_DATABASE_URL": "postgresql://x",
                                "DCOPS_TRAP_COMMUNITY": "c"})
    assert check.returncode == 0, check.stderr
    assert re.search(r"OK - site dc1", check.stdout)
