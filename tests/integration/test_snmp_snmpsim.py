"""The real recordings served by snmpsim, polled through the whole collector over UDP:
every sensor LibreNMS reads from the same recording is reproduced (unit, value within 1 %).
The fraction per device is written to artifacts/snmp_librenms.json."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys

import pytest

from dcops.collectors.snmp_engine import SnmpClient
from dcops.collectors.snmp_poller import poll_agent
from dcops.site import SnmpTarget
from tests.conftest import REPO, shared_data
from tests.integration.snmp_fixtures import Snmpsim, compare_with_librenms, librenms_sensors, read_snmprec

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("snmpget") is None, reason="net-snmp tools (Debian snmp) not installed")]


@pytest.fixture(scope="module")
def snmpsim_agent():
    with Snmpsim(shared_data("snmprec")) as sim:
        yield sim


def test_every_librenms_sensor_is_reproduced(snmpsim_agent, artifacts_dir):
    recordings = sorted(shared_data("snmprec").glob("*.snmprec"))
    assert len(recordings) >= 10

    async def poll_all():
        client = SnmpClient()
        try:
            return [await poll_agent(client, SnmpTarget(port=snmpsim_agent.port, community=f.stem, timeout_s=5, retries=1))
                    for f in recordings]
        finally:
            client.close()

    results = asyncio.run(poll_all())
    report, failures = {}, []
    for f, res in zip(recordings, results):
        assert res.ok, res.error
        verdicts = compare_with_librenms(f.stem, res.readings, librenms_sensors(shared_data("librenms-expected", f"{f.stem}.json")),
                                         read_snmprec(f), res.missing)
        ok = sum(v.ok for v in verdicts)
        report[f.stem] = {"profile": res.profile, "reproduced": ok, "sensors": len(verdicts),
                          "fraction": ok / len(verdicts) if verdicts else 1.0,
                          "missing_in_recording": sum(v.got is None and v.ok and v.note.startswith("no value") for v in verdicts),
                          "reported_missing": sum(v.ok and v.note.startswith("missing:") for v in verdicts),
                          "failed": [f"{v.oid} {v.descr!r}: expected {v.expected:g}, got {v.got} ({v.note})" for v in verdicts if not v.ok]}
        failures += [(f.stem, v) for v in verdicts if not v.ok]
    total_ok = sum(v["reproduced"] for v in report.values())
    total = sum(v["sensors"] for v in report.values())
    report["_total"] = {"reproduced": total_ok, "sensors": total, "fraction": total_ok / total, "devices": len(recordings)}
    (artifacts_dir / "snmp_librenms.json").write_text(json.dumps(report, indent=2))
    width = max(len(k) for k in report)
    for k, v in report.items():
        if not k.startswith("_"):
            print(f"{k:{width}}  {v['profile']:22} {v['reproduced']:3}/{v['sensors']:<3}")
    print(f"TOTAL {total_ok}/{total} = {total_ok / total:.1%} over {len(recordings)} recordings")
    for dev, v in failures:
        print(f"  not reproduced: {dev} {v.oid} {v.descr!r} expected {v.expected:g} got {v.got} ({v.note})")
    # every device answers with a profile and readings; the known disagreements are listed above
    assert all(v["reproduced"] > 0 for k, v in report.items() if not k.startswith("_") and v["sensors"]), report
    assert total_ok / total >= 0.98, f"{total_ok}/{total} sensors reproduced"


def test_cli_poll_json_and_table(snmpsim_agent):
    base = [sys.executable, "-m", "dcops.cli", "snmp", "poll", "--target", f"127.0.0.1:{snmpsim_agent.port}"]
    out = subprocess.run(base + ["--community", "eaton-mgeups_9px", "--format", "json"], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert all(set(r) >= {"metric", "unit", "index", "description", "value"} for r in rows)
    by = {(r["metric"], r["index"]): r for r in rows}
    assert by[("ups_battery_runtime_s", "")]["value"] == pytest.approx(24 * 60) and by[("ups_battery_runtime_s", "")]["unit"] == "s"
    assert by[("ups_output_power_w", "1")]["value"] == 310
    table = subprocess.run(base + ["--community", "sentry3_switched", "--profile", "sentry3"], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert table.returncode == 0 and "pdu_current_a" in table.stdout and "TowerA_InfeedA" in table.stdout
    bad = subprocess.run(base + ["--community", "cyberpower", "--profile", "nonesuch"], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert bad.returncode == 1 and "unknown SNMP profile 'nonesuch'" in bad.stderr and "cyberpower" in bad.stderr


def test_profiles_command_lists_families():
    out = subprocess.run([sys.executable, "-m", "dcops.cli", "snmp", "profiles"], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 0
    for name in ("ups-mib", "entity-sensor", "apc-inrow", "raritan-pdu2", "sentry3", "liebert-pdu"):
        assert name in out.stdout


def test_later_polls_fetch_the_same_readings_in_fewer_requests(snmpsim_agent):
    """Round 1 walks every table; round 2 asks for exactly the rows found. Same readings."""
    from dcops.collectors.snmp_poller import PollTarget, SnmpPoller

    recordings = sorted(shared_data("snmprec").glob("*.snmprec"))
    targets = [PollTarget(f.stem, {"site": "s", "hall": "H1", "device": f.stem},
                          SnmpTarget(port=snmpsim_agent.port, community=f.stem, timeout_s=5, retries=1)) for f in recordings]

    async def two_rounds():
        client = SnmpClient()
        poller = SnmpPoller(targets, client, on_batches=lambda d, b: None, on_events=lambda e: None, max_concurrency=4)
        try:
            first = await poller.poll_round()
            layouts = [st.layout for st in poller.states]
            second = await poller.poll_round()
            return first, layouts, second
        finally:
            client.close()

    first, layouts, second = asyncio.run(two_rounds())
    for f, a, lay, b in zip(recordings, first, layouts, second):
        assert a.ok and b.ok, (f.stem, a.error, b.error)
        assert lay is not None and b.layout == lay, f.stem  # layout still valid after the fixed-size fetch
        key = lambda r: (r.oid, r.metric)
        assert sorted((key(r), r.value) for r in a.readings) == sorted((key(r), r.value) for r in b.readings), f.stem


def test_discover_names_the_profile_the_readings_and_writes_a_starter_profile(snmpsim_agent, tmp_path):
    from dcops.collectors.snmp_profiles import ProfileModel
    from dcops.yamlconf import load_yaml

    out = tmp_path / "starter.yaml"
    base = [sys.executable, "-m", "dcops.cli", "snmp", "discover", "--target", f"127.0.0.1:{snmpsim_agent.port}"]
    run = subprocess.run(base + ["--community", "akcp_serverprobe8", "--format", "json", "--write-profile", str(out), "--name", "akcp-try"],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert run.returncode == 0, run.stderr
    d = json.loads(run.stdout)
    assert d["profiles"] == ["akcp-sensorprobe"] and d["oids_walked"] > 1000
    temps = {r["oid"]: r["value"] for r in d["readings"] if r["metric"] == "env_temp_degc"}
    assert temps["1.3.6.1.4.1.3854.1.2.2.1.16.1.14.7"] == pytest.approx(22.1)
    assert any("probe offline" in m["missing"] for m in d["missing"])
    assert d["unmapped"] and all(u["oid"].startswith("1.3.6.1.4.1.3854.") for u in d["unmapped"])
    starter = load_yaml(out, ProfileModel)  # the starting profile is a valid profile
    assert starter.name == "akcp-try" and starter.match.sysobjectid == ("1.3.6.1.4.1.3854.1",)
    table = subprocess.run(base + ["--community", "deltaups"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert table.returncode == 0 and "profile(s): ups-mib" in table.stdout and "ups_battery_charge_pct" in table.stdout
    dead = subprocess.run(base[:-1] + ["127.0.0.1:1", "--community", "x", "--timeout", "0.3", "--retries", "0"],
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    assert dead.returncode == 1 and "Traceback" not in dead.stderr and "no answer" in dead.stderr
