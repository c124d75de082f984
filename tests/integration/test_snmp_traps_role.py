"""The `traps` role: a real net-snmp `snmptrap` (v2c and v3) reaches the bus as an event on the
device the site config names; wrong credentials are dropped."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time

import pytest

from dcops.bus import TOPIC_EVENTS
from dcops.codec import decode_events
from dcops.site import site_from_text
from tests.integration.snmp_fixtures import free_udp_port

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("snmptrap") is None,
                                                   reason="net-snmp snmptrap (Debian snmp) not installed")]

SITE = """
site: trapSite
halls:
  - name: H1
    upses: [{{name: UPS-T, capacity_kw: 100, snmp: {{host: 127.0.0.1, port: 1161}}}}]
    pdus: [{{name: PDU-T, ups: UPS-T, capacity_kw: 50}}]
    rows:
      - name: R1
        racks:
          - {{name: R1-01, feeds: {{A: PDU-T}}, servers: [{{name: srv, kind: cpu_server, psus: [A]}}]}}
settings:
  roles: [traps]
  traps:
    host: 127.0.0.1
    port: {port}
    communities: ["env:DCOPS_TEST_TRAP_COMMUNITY"]
    users:
      - {{user: noc, auth_protocol: SHA256, auth_key: "authpass123", priv_protocol: AES128, priv_key: "privpass123",
         engine_ids: ["0x8000000001020304"]}}
"""


def _send(*cmd):
    r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr


def test_traps_role_publishes_site_devices_events(monkeypatch):
    from dcops.collectors.snmp_traps import run_role
    from dcops.wiring import open_bus

    monkeypatch.setenv("DCOPS_TEST_TRAP_COMMUNITY", "s3cret")
    port = free_udp_port()
    cfg = site_from_text(SITE.format(port=port))
    cons = open_bus(cfg.settings.bus).consumer([TOPIC_EVENTS], "traps-role-test")
    stop = threading.Event()
    th = threading.Thread(target=run_role, args=(cfg, stop), daemon=True)
    th.start()
    time.sleep(1.0)
    dest = f"127.0.0.1:{port}"
    v3 = ["-u", "noc", "-l", "authPriv", "-a", "SHA-256", "-A", "authpass123", "-x", "AES", "-X", "privpass123"]
    try:
        _send("snmptrap", "-v2c", "-c", "wrong", dest, "", "1.3.6.1.2.1.33.2.1")        # dropped
        _send("snmptrap", "-v2c", "-c", "s3cret", dest, "", "1.3.6.1.2.1.33.2.1")       # upsTrapOnBattery
        _send("snmptrap", "-v3", "-e", "0x8000000001020304", *v3, dest, "", "1.3.6.1.2.1.33.2.3")
        got = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and len(got) < 2:
            got += [e for m in cons.poll(0.2, 100) for e in decode_events(m.value) if e.target.get("site") == "trapSite"]
    finally:
        stop.set()
        th.join(10)
    assert not th.is_alive()
    assert [(e.kind, e.attributes["name"]) for e in got] == [("ups_on_battery", "upsTrapOnBattery"),
                                                             ("snmp_trap", "upsTrapAlarmEntryAdded")]
    assert all(e.target["device"] == "UPS-T" and e.target["hall"] == "H1" for e in got)
    assert len(got) == 2  # the trap with the wrong community was not accepted
    assert "s3cret" not in repr(cfg.settings.traps) and "privpass123" not in repr(cfg.settings.traps)
