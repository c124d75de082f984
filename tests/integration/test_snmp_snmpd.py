"""The poller and trap receiver against net-snmp: snmpd agents (v2c and SNMPv3 authPriv),
wrong credentials, an agent that stops answering mid-run, values of unexpected types, and
traps/informs sent with snmptrap/snmpinform."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import threading
import time

import pytest

from dcops.collectors.snmp_engine import SnmpClient
from dcops.collectors.snmp_poller import PollTarget, SnmpPoller, poll_agent, run_poller
from dcops.collectors.snmp_traps import TrapReceiver, TrapReceiverConfig, TrapUser
from dcops.bus import TOPIC_EVENTS, TOPIC_SAMPLES, InProcessBus
from dcops.codec import decode_batch, decode_events
from dcops.site import SnmpTarget
from tests.integration.snmp_fixtures import Snmpd, free_udp_port

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("snmpd") is None or shutil.which("snmptrap") is None,
                                                   reason="net-snmp snmpd/snmptrap (Debian snmpd, snmp) not installed")]

UPS = {
    "1.3.6.1.2.1.33.1.1.1.0": ("octet_str", "ACME"),
    "1.3.6.1.2.1.33.1.2.4.0": ("integer", 87),
    "1.3.6.1.2.1.33.1.2.3.0": ("integer", 12),
    "1.3.6.1.2.1.33.1.4.4.1.2.1": ("integer", 230),
    "1.3.6.1.2.1.33.1.4.4.1.2.2": ("integer", 231),
    "1.3.6.1.2.1.33.1.4.4.1.3.1": ("integer", 42),
}
USERS = (("u256", "SHA-256", "authpass123", "AES", "privpass123"), ("u1", "SHA", "authpass123", "AES256", "privpass123"))


@pytest.fixture(scope="module")
def agent():
    with Snmpd(UPS, v3_users=USERS) as d:
        yield d


def _poll(target):
    async def once():
        c = SnmpClient()
        try:
            return await poll_agent(c, target)
        finally:
            c.close()
    return asyncio.run(once())


def _values(res):
    return {(r.metric, r.index): r.value for r in res.readings}


@pytest.mark.parametrize("auth,priv,user", [("SHA256", "AES128", "u256"), ("SHA", "AES256", "u1")])
def test_v3_authpriv(agent, auth, priv, user):
    res = _poll(SnmpTarget(port=agent.port, version="3", user=user, auth_protocol=auth, auth_key="authpass123",
                           priv_protocol=priv, priv_key="privpass123"))
    assert res.ok, res.error
    assert res.profile == "ups-mib"  # generic sysObjectID: found by the UPS-MIB probe
    v = _values(res)
    assert v[("ups_battery_charge_pct", "")] == 87 and v[("ups_battery_runtime_s", "")] == 720
    assert v[("ups_output_voltage_v", "2")] == 231 and v[("ups_output_current_a", "1")] == pytest.approx(4.2)


def test_v3_wrong_credentials_are_clear_errors(agent):
    base = dict(port=agent.port, version="3", auth_protocol="SHA256", priv_protocol="AES128", timeout_s=0.5, retries=0)
    bad_auth = _poll(SnmpTarget(user="u256", auth_key="wrongpass1", priv_key="privpass123", **base))
    assert not bad_auth.ok and bad_auth.auth_error and "authentication failed (wrong auth key" in bad_auth.error
    bad_user = _poll(SnmpTarget(user="mallory", auth_key="authpass123", priv_key="privpass123", **base))
    assert not bad_user.ok and bad_user.auth_error and "unknown SNMPv3 user" in bad_user.error
    bad_priv = _poll(SnmpTarget(user="u256", auth_key="authpass123", priv_key="wrongpriv1", **base))
    assert not bad_priv.ok and "wrong privacy key" in bad_priv.error
    for r in (bad_auth, bad_user, bad_priv):
        assert "authpass123" not in r.error and "privpass123" not in r.error


def test_unexpected_types_are_reported_not_fatal():
    values = dict(UPS)
    values["1.3.6.1.2.1.33.1.2.4.0"] = ("octet_str", "full")      # charge as a string
    values["1.3.6.1.2.1.33.1.4.4.1.2.1"] = ("object_id", ".1.3.6.1.4.1")  # voltage as an OID
    with Snmpd(values) as d:
        res = _poll(SnmpTarget(port=d.port, profile="ups-mib"))
    assert res.ok
    v = _values(res)
    assert ("ups_battery_charge_pct", "") not in v and ("ups_output_voltage_v", "1") not in v
    assert v[("ups_output_voltage_v", "2")] == 231 and v[("ups_battery_runtime_s", "")] == 720
    assert any("1.3.6.1.2.1.33.1.2.4.0" in p and "'full'" in p for p in res.problems)
    assert len(res.problems) == 2


def test_agent_that_stops_answering_mid_run(caplog):
    with Snmpd(UPS) as a, Snmpd(UPS) as b:
        targets = [PollTarget(name, {"site": "s", "hall": "H1", "device": name}, SnmpTarget(port=d.port, timeout_s=1.5, retries=1))
                   for name, d in (("UPS-A", a), ("UPS-B", b))]
        batches, events = [], []

        async def scenario():
            c = SnmpClient()
            poller = SnmpPoller(targets, c, on_batches=lambda dev, bs: batches.append((dev, bs)), on_events=events.extend)
            try:
                r1 = await poller.poll_round()
                a.pause()
                r2 = await poller.poll_round()
                r3 = await poller.poll_round()
                a.resume()
                r4 = await poller.poll_round()
                return r1, r2, r3, r4
            finally:
                c.close()

        r1, r2, r3, r4 = asyncio.run(scenario())
    assert [r.ok for r in r1] == [True, True] and [r.ok for r in r4] == [True, True]
    assert [r.ok for r in r2] == [False, True] and [r.ok for r in r3] == [False, True]
    assert r2[0].duration_s >= 2.9 and r2[1].duration_s < 1.5  # the silent agent does not slow the other
    kinds = [(e.kind, e.target["device"]) for e in events]
    assert kinds == [("agent_unreachable", "UPS-A"), ("agent_recovered", "UPS-A")]  # one event per outage, not per poll
    assert events[0].severity == "major" and "timed out" in events[0].message
    assert sum(1 for dev, _ in batches if dev == "UPS-A") == 2 and sum(1 for dev, _ in batches if dev == "UPS-B") == 4
    assert sum("unreachable" in r.message for r in caplog.records) == 1


def test_run_poller_publishes_batches_and_events_to_the_bus():
    with Snmpd(UPS) as d:
        bus = InProcessBus()
        stop = threading.Event()
        targets = [PollTarget("UPS-A", {"hall": "H1", "device": "UPS-A"}, SnmpTarget(port=d.port, interval_s=0.3)),
                   PollTarget("UPS-X", {"hall": "H1", "device": "UPS-X"}, SnmpTarget(port=free_udp_port(), interval_s=0.3, timeout_s=0.3, retries=0))]
        th = threading.Thread(target=run_poller, args=(targets, bus, stop, "site1"), daemon=True)
        th.start()
        cons = bus.consumer([TOPIC_SAMPLES, TOPIC_EVENTS], "t")
        samples, events = [], []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (len(samples) < 3 or not events):
            for m in cons.poll(0.2, 1000):
                if m.topic == TOPIC_SAMPLES:
                    samples.append(decode_batch(m.value))
                else:
                    events.extend(decode_events(m.value))
        stop.set()
        th.join(10)
        assert not th.is_alive()
        for m in cons.poll(0.2, 1000):
            if m.topic == TOPIC_EVENTS:
                events.extend(decode_events(m.value))
    assert len(samples) >= 3 and all(b.measurement == "ups" for b in samples)
    b = samples[0]
    assert set(b.tags) == {"site", "hall", "device", "index"} and b.tags["site"][0] == "site1"
    assert [(e.kind, e.target["device"]) for e in events] == [("agent_unreachable", "UPS-X")]


def _send(*cmd):
    r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr


def test_traps_and_informs_v2c_and_v3_become_events():
    port = free_udp_port()
    got = []
    user = TrapUser("trapuser", "SHA256", "authpass123", "AES128", "privpass123", engine_ids=("8000000001020304",))
    cfg = TrapReceiverConfig(host="127.0.0.1", port=port, communities=("public",), users=(user,),
                             devices={"127.0.0.1": {"site": "s", "hall": "H1", "device": "UPS-A"}})
    dest = f"127.0.0.1:{port}"
    v3 = ["-u", "trapuser", "-l", "authPriv", "-a", "SHA-256", "-A", "authpass123", "-x", "AES", "-X", "privpass123"]

    async def scenario():
        rx = TrapReceiver(cfg, got.extend)
        rx.start()
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, _send, "snmptrap", "-v2c", "-c", "public", dest, "", "1.3.6.1.2.1.33.2.1")
            await loop.run_in_executor(None, _send, "snmptrap", "-v2c", "-c", "public", dest, "", "1.3.6.1.2.1.33.2.3",
                                       "1.3.6.1.2.1.33.1.6.2.1.2.7", "o", "1.3.6.1.2.1.33.1.6.3.8")
            await loop.run_in_executor(None, _send, "snmptrap", "-v3", "-e", "0x8000000001020304", *v3, dest, "", "1.3.6.1.4.1.318.0.7")
            await loop.run_in_executor(None, _send, "snmpinform", "-v3", *v3, "-t", "2", "-r", "1", dest, "", "1.3.6.1.4.1.318.0.9")
            await loop.run_in_executor(None, _send, "snmpinform", "-v2c", "-c", "public", "-t", "2", "-r", "1", dest, "",
                                       "1.3.6.1.4.1.8072.9999.9999.7.0.3")
            await loop.run_in_executor(None, _send, "snmptrap", "-v2c", "-c", "public", dest, "", "1.3.6.1.4.1.99999.0.1",
                                       "1.3.6.1.4.1.99999.1", "s", "hello")
            # wrong community and wrong v3 key: dropped by the receiver, never mapped
            await loop.run_in_executor(None, _send, "snmptrap", "-v2c", "-c", "nope", dest, "", "1.3.6.1.2.1.33.2.1")
            bad = list(v3)
            bad[bad.index("authpass123")] = "wrongpass1"
            await loop.run_in_executor(None, _send, "snmptrap", "-v3", "-e", "0x8000000001020304", *bad, dest, "", "1.3.6.1.2.1.33.2.1")
            await asyncio.sleep(0.5)
        finally:
            rx.close()

    asyncio.run(scenario())
    kinds = [(e.kind, e.severity) for e in got]
    assert kinds == [("ups_on_battery", "major"), ("ups_overload", "major"), ("ups_battery_low", "critical"),
                     ("ups_on_utility", "cleared"), ("breaker_trip", "critical"), ("snmp_trap", "indeterminate")]
    assert all(e.target["device"] == "UPS-A" for e in got)
    assert got[1].attributes["name"] == "upsAlarmOutputOverload"
    assert got[-1].attributes["varbinds"] == {"1.3.6.1.4.1.99999.1": "hello"}


def test_run_role_polls_the_site_config_devices():
    from dcops.collectors.snmp_poller import run_role
    from dcops.site import site_from_text
    from dcops.wiring import open_bus

    with Snmpd(UPS) as d:
        cfg = site_from_text(f"""
site: roleSite
halls:
  - name: H1
    upses: [{{name: UPS-R, capacity_kw: 100, snmp: {{port: {d.port}, interval_s: 0.5}}}}]
    pdus: [{{name: PDU-R, ups: UPS-R, capacity_kw: 50}}]
    rows:
      - name: R1
        racks:
          - name: R1-01
            feeds: {{A: PDU-R}}
            servers: [{{name: srv, kind: cpu_server, psus: [A]}}]
""")
        cons = open_bus(cfg.settings.bus).consumer([TOPIC_SAMPLES], "role-test")
        stop = threading.Event()
        th = threading.Thread(target=run_role, args=(cfg, stop), daemon=True)
        th.start()
        got = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not got:
            # the embedded bus is shared by the process: skip what earlier tests left on it
            got = [b for b in (decode_batch(m.value) for m in cons.poll(0.2, 100))
                   if b.measurement == "ups" and "site" in b.tags and b.tags["site"][0] == "roleSite"]
        stop.set()
        th.join(10)
    assert not th.is_alive() and got
    b = got[0]
    assert b.measurement == "ups" and b.tags["site"][0] == "roleSite" and b.tags["device"][0] == "UPS-R"


def test_cli_v3_poll_and_wrong_credentials(agent):
    import json
    import os
    import sys

    from tests.conftest import REPO

    base = [sys.executable, "-m", "dcops.cli", "snmp", "poll", "--target", f"127.0.0.1:{agent.port}", "--v3-user", "u256",
            "--auth-protocol", "SHA256", "--priv-protocol", "AES128", "--timeout", "1", "--retries", "0", "--format", "json"]
    env = dict(os.environ, DCOPS_SNMP_AUTH_KEY="authpass123", DCOPS_SNMP_PRIV_KEY="privpass123")
    ok = subprocess.run(base, capture_output=True, text=True, cwd=REPO, env=env, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert {"metric": "ups_battery_charge_pct", "unit": "%", "index": ""}.items() <= next(
        r for r in json.loads(ok.stdout) if r["metric"] == "ups_battery_charge_pct").items()
    bad = subprocess.run(base + ["--auth-key", "wrongpass1"], capture_output=True, text=True, cwd=REPO, env=env, timeout=60)
    assert bad.returncode == 1 and "SNMPv3 authentication failed" in bad.stderr and "Traceback" not in bad.stderr
    assert "wrongpass1" not in bad.stderr and "privpass123" not in bad.stderr
    missing = subprocess.run(base, capture_output=True, text=True, cwd=REPO, env={k: v for k, v in os.environ.items() if not k.startswith("DCOPS_SNMP")}, timeout=60)
    assert missing.returncode == 2 and "needs --auth-key and --priv-key" in missing.stderr
