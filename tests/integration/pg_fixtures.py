"""A throwaway PostgreSQL cluster for tests: initdb + pg_ctl from Debian's `postgresql` package
(.ci/apt.d/postgres.txt), on a free loopback port in a temp dir, torn down after the session.

As root, the cluster is created and run as the `postgres` user (initdb refuses root); the data
directory lives in a fresh temp dir owned by that user. Each test gets its own database
(`fresh_pg_url`), so tests never see each other's rows.

    from tests.integration.pg_fixtures import pg_cluster, db_url   # noqa: F401 (fixtures)

`db_url` is parametrised over `sqlite` and `postgresql`; tests that take it run on both.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

__all__ = ["PgCluster", "pg_cluster", "db_url", "pg_bin"]


def pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgCluster:
    def __init__(self) -> None:
        initdb, pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
        if not initdb or not pg_ctl:
            pytest.skip("PostgreSQL server binaries not found (install Debian's postgresql: .ci/apt.d/postgres.txt)")
        self.initdb, self.pg_ctl = initdb, pg_ctl
        self.port = _free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="dcops-pg-"))
        self.data = self.dir / "data"
        self.user = None
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root and there is no 'postgres' user to run PostgreSQL as")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self.user = "postgres"
        self.role = self.user or pwd.getpwuid(os.geteuid()).pw_name

    def _run(self, argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
        if self.user:
            argv = ["runuser", "-u", self.user, "--", *argv]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)

    def start(self) -> "PgCluster":
        p = self._run([self.initdb, "-D", str(self.data), "-A", "trust", "-U", self.role, "-E", "UTF8",
                       "--no-sync", "--locale=C"], timeout=120)
        if p.returncode != 0:
            raise RuntimeError(f"initdb failed: {p.stdout}\n{p.stderr}")
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        p = self._run([self.pg_ctl, "-D", str(self.data), "-l", str(self.dir / "log"), "-o", opts, "-w", "-t", "60",
                       "start"], timeout=90)
        if p.returncode != 0:
            log = (self.dir / "log").read_text(errors="replace") if (self.dir / "log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {p.stdout}\n{p.stderr}\n{log}")
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.role}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        import psycopg
        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user={self.role} dbname=postgres", autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        self._run([self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop"], timeout=60)
        for _ in range(50):
            if not (self.data / "postmaster.pid").exists():
                break
            time.sleep(0.1)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_cluster():
    c = PgCluster().start()
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A fresh, empty database URL: a SQLite file, or a new database on the throwaway cluster."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'dcops.sqlite'}"
    return request.getfixturevalue("pg_cluster").create_database()
