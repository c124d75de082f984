"""`dcops console-user` against a SQLite database named by a site config."""

from __future__ import annotations

import io

from dcops.cli import main
from tests.conftest import SMALL_SITE


def test_add_list_set_role_disable(tmp_path, monkeypatch, capsys):
    db = tmp_path / "users.sqlite"
    site = tmp_path / "site.yaml"
    site.write_text(SMALL_SITE.read_text() + f"\nsettings:\n  database: {{url: 'sqlite:///{db}'}}\n")
    monkeypatch.setattr("sys.stdin", io.StringIO("a-long-password\n"))
    assert main(["console-user", "-c", str(site), "add", "alice", "--role", "operator", "--password-stdin"]) == 0
    assert main(["console-user", "-c", str(site), "set-role", "alice", "admin"]) == 0
    assert main(["console-user", "-c", str(site), "list"]) == 0
    assert "alice\tadmin\tactive" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["console-user", "-c", str(site), "add", "bob", "--role", "viewer", "--password-stdin"]) == 1
    assert "at least 10 characters" in capsys.readouterr().err
    assert main(["console-user", "-c", str(site), "disable", "alice"]) == 0
    from dcops.console.users import UserStore

    users = UserStore.from_url(f"sqlite:///{db}")
    assert users.verify("alice", "a-long-password") is None and users.get("bob") is None


def test_run_role_serves_the_console_until_stopped(tmp_path):
    import threading
    import time
    import urllib.request

    from dcops.console.app import run_role
    from dcops.console.users import UserStore
    from dcops.site import site_from_text
    from tests.integration.datapath_fixtures import free_port, wait_port

    port = free_port()
    db = tmp_path / "dcops.sqlite"
    cfg = site_from_text(SMALL_SITE.read_text() + (
        f"\nsettings:\n  database: {{url: 'sqlite:///{db}'}}\n  store: {{path: '{tmp_path}/t.duckdb'}}\n"
        f"  console: {{port: {port}}}\n"))
    from dcops.dbschema import upgrade

    upgrade(f"sqlite:///{db}")  # the schema is the migrations' (as `dcops db upgrade` or the role would make it)
    UserStore.from_url(f"sqlite:///{db}").create_user("admin", "a-long-password", "admin")
    stop = threading.Event()
    t = threading.Thread(target=run_role, args=(cfg, stop), daemon=True)
    t.start()
    try:
        wait_port(port, 30)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=10) as r:
            assert r.status == 200 and b"dcops NOC console" in r.read()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/_dash-layout")
        try:
            urllib.request.urlopen(req, timeout=10)
            raise AssertionError("the layout must need a login")
        except urllib.error.HTTPError as e:
            assert e.code == 401
    finally:
        stop.set()
        t.join(timeout=15)
    assert not t.is_alive()
    time.sleep(0.1)
