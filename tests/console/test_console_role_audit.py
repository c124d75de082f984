"""The production console role (`dcops role console`) and `dcops console-user` write the keyed audit
chain, anchor it outside the database, and `dcops audit verify` checks it (issue 20, failures 4, 5)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
from sqlalchemy import create_engine, text

from dcops.alerts.storage.audit import AuditLog, read_anchors
from tests.conftest import SMALL_SITE

KEY = "audit-key-kept-out-of-the-database"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dcops(*args, env, stdin=None, timeout=60):
    return subprocess.run([sys.executable, "-m", "dcops.cli", *args], input=stdin, capture_output=True, text=True,
                          env=env, timeout=timeout)


@pytest.fixture
def site(tmp_path):
    port = _free_port()
    path = tmp_path / "site.yaml"
    path.write_text(SMALL_SITE.read_text() + f"""
settings:
  store: {{kind: duckdb, path: "{tmp_path}/store.duckdb"}}
  database: {{url: "sqlite:///{tmp_path}/dcops.sqlite", audit_key: "env:DCOPS_AUDIT_KEY",
              audit_anchor_file: "{tmp_path}/anchors.jsonl", audit_anchor_interval_s: 1}}
  console: {{host: 127.0.0.1, port: {port}}}
  metrics: {{enabled: false}}
""")
    env = {**os.environ, "DCOPS_AUDIT_KEY": KEY}
    return path, port, env, tmp_path


def test_user_admin_logins_and_verify(site):
    path, port, env, tmp = site
    r = _dcops("console-user", "-c", str(path), "add", "alice", "--role", "admin", "--password-stdin", env=env,
               stdin="correct-horse-battery\n")
    assert r.returncode == 0, r.stderr
    assert _dcops("console-user", "-c", str(path), "set-role", "alice", "operator", env=env).returncode == 0
    assert _dcops("console-user", "-c", str(path), "set-role", "alice", "admin", env=env).returncode == 0

    role = subprocess.Popen([sys.executable, "-m", "dcops.cli", "role", "console", "-c", str(path)], env=env,
                            stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(base + "/login", timeout=2)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline and role.poll() is None, "console did not start"
                time.sleep(0.5)
        hdr = {"Origin": base}
        bad = httpx.post(base + "/login", data={"username": "alice", "password": "wrong-wrong-wrong"}, headers=hdr)
        good = httpx.post(base + "/login", data={"username": "alice", "password": "correct-horse-battery"},
                          headers=hdr)
        assert bad.status_code == 401 and good.status_code == 302
        time.sleep(2)
    finally:
        role.send_signal(signal.SIGTERM)
        role.wait(60)
    err = role.stderr.read()
    assert "Traceback" not in err

    eng = create_engine(f"sqlite:///{tmp}/dcops.sqlite")
    records = AuditLog(eng, key=KEY.encode()).records()
    actions = [(r.action, r.target_id) for r in records]
    assert ("user.create", "alice") in actions and ("user.set_role", "alice") in actions
    assert ("login_failed", "alice") in actions and ("login", "alice") in actions
    assert all(r.actor for r in records) and records[0].actor.startswith("cli:")
    anchors = read_anchors(tmp / "anchors.jsonl")
    assert anchors and anchors[-1]["seq"] == len(records), "the final head was anchored at stop"

    ok = _dcops("audit", "verify", "-c", str(path), env=env)
    assert ok.returncode == 0 and "HMAC-keyed" in ok.stdout, ok.stdout + ok.stderr
    # a privileged editor removes the guard and the newest records (the logins)
    with eng.begin() as c:
        c.execute(text("DROP TRIGGER audit_log_no_delete"))
        c.execute(text(f"DELETE FROM audit_log WHERE seq > {len(records) - 2}"))
    broken = _dcops("audit", "verify", "-c", str(path), env=env)
    assert broken.returncode == 1 and "deleted from the tail" in broken.stdout, broken.stdout + broken.stderr
    nokey = _dcops("audit", "verify", "-c", str(path), env={k: v for k, v in env.items() if k != "DCOPS_AUDIT_KEY"})
    assert nokey.returncode == 2 and "Traceback" not in nokey.stderr
    eng.dispose()


def test_console_server_loop_waking_on_a_closed_socket_ends_quietly_only_after_close():
    """Waitress's loop may wake on a descriptor `close()` just closed (EBADF): after a close that
    is the loop ending; before one it is an error and is raised (seen under load in the role test)."""
    import errno

    import dash

    from dcops.console.app import ConsoleServer

    def ebadf():
        raise OSError(errno.EBADF, "Bad file descriptor")

    srv = ConsoleServer(dash.Dash(__name__), "127.0.0.1", 0)
    srv._server.run = ebadf
    with pytest.raises(OSError):
        srv.run()
    srv.close()
    srv.run()  # returns: the loop ended because we closed it
