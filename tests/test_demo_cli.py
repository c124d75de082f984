"""`dcops demo` / `dcops inject` at the edges: another site's default faults, a failed thread fails
the command, the port is checked first, clean shutdown (no WAL file, no traceback, every thread
joined), and `inject --list` without a running demo."""

from __future__ import annotations

import logging
import socket
import threading
import time

import pytest

from dcops.cli import main
from dcops.demo import DEFAULT_FAULTS, Demo, DemoOptions, site_faults
from dcops.sim import FAULT_TYPES
from tests.conftest import SMALL_SITE


def test_default_faults_fit_the_site(small_inventory, small_site):
    from dcops.site import load_site
    from dcops.topology import build_inventory
    from tests.conftest import DEMO_SITE

    demo_inv = build_inventory(load_site(DEMO_SITE))
    assert site_faults(demo_inv) == DEFAULT_FAULTS  # the demo site keeps its own targets
    fitted = site_faults(small_inventory)
    assert [f[1] for f in fitted] == [f[1] for f in DEFAULT_FAULTS]
    for _, kind, target in fitted:
        comp = small_inventory.resolve(target)
        ft = FAULT_TYPES[kind]
        assert comp.kind in ft.target_kinds and (not ft.vendor or comp.attrs["vendor"] == ft.vendor)


def test_port_is_validated_and_a_taken_port_fails_at_once(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--port", "99999"])
    assert exc.value.code == 2 and "99999 is not a port number (1..65535)" in capsys.readouterr().err
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        t0 = time.monotonic()
        rc = main(["demo", "-c", str(SMALL_SITE), "--port", str(port), "--data-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 1 and time.monotonic() - t0 < 5
    assert f"127.0.0.1:{port}" in err and "--port" in err


def test_help_describes_seed_host_and_port(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    out = capsys.readouterr().out
    for opt, words in (("--seed", "random seed"), ("--host", "address the console listens on"),
                       ("--port", "TCP port of the console")):
        assert words in out, opt


def test_a_failed_thread_fails_the_demo(small_site, tmp_path):
    lines = []
    demo = Demo(small_site, DemoOptions(history=False, data_dir=tmp_path, interval_s=1.0, speed=20.0, console=False, snmp=False,
                                        alerts=False, analytics=False,
                                        faults=((0.01, "crac_failure", "CRAC-NOPE"),)), say=lines.append)
    demo.start()
    try:
        deadline = time.monotonic() + 20
        while not demo.failures and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        left = demo.stop()
    assert [name for name, _ in demo.failures] == ["simulator"]
    assert "CRAC-NOPE" in str(demo.failures[0][1]) and left == []


def test_the_command_exits_non_zero_when_a_thread_fails(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("dcops.demo.site_faults", lambda inv: ((0.01, "crac_failure", "CRAC-NOPE"),))
    rc = main(["demo", "-c", str(SMALL_SITE), "--no-console", "--no-history", "--data-dir", str(tmp_path),
               "--interval", "1", "--speed", "20", "--duration", "30"])
    captured = capsys.readouterr()
    assert rc == 1
    assert "thread simulator failed" in captured.err and "stopped cleanly" not in captured.out


def test_another_site_runs_and_stops_cleanly(tmp_path, capsys, caplog):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    before = {t.ident for t in threading.enumerate()}
    with caplog.at_level(logging.WARNING):
        rc = main(["demo", "-c", str(SMALL_SITE), "--port", str(port), "--data-dir", str(tmp_path),
                   "--interval", "1", "--speed", "20", "--duration", "3"])
    out = capsys.readouterr().out
    assert rc == 0 and "stopped cleanly" in out
    assert "fault scheduled in 15s: crac_failure on CRAC-1" in out  # the small site's own cooling unit
    assert "past incidents of the fault library" in out and list((tmp_path / "history").glob("history-*.sqlite"))
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
    assert (tmp_path / "alerts.sqlite").exists()
    assert not (tmp_path / "alerts.sqlite-wal").exists() and not (tmp_path / "alerts.sqlite-shm").exists()
    assert not (tmp_path / "control.json").exists()
    time.sleep(0.5)
    left = [t.name for t in threading.enumerate() if t.ident not in before and t.name.startswith("dcops")]
    assert left == []


def test_inject_list_works_without_a_running_demo(tmp_path, capsys):
    assert main(["inject", "--list", "--data-dir", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "crac_failure" in captured.out and "gpu_xid79" in captured.out
    assert f"no demo is running with data in {tmp_path}" in captured.err
