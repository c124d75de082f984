"""The Redfish collector against the real BMC mockups in ../shared/data/redfish, served over
HTTP(S) on loopback: every PSU, fan, temperature and power reading with its value and unit,
the event logs (incremental, no repeats after a restart), and BMCs that misbehave."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest

from dcops.collectors.redfish_client import BmcTarget, BmcUnavailable, RedfishConnection
from dcops.collectors.redfish_logs import entry_from_event, read_logs
from dcops.collectors.redfish_map import read_bmc
from dcops.collectors.redfish_poller import RedfishPoller
from tests.collectors.redfish_server import MOCKUPS, FakeBmc, make_cert

REPO = Path(__file__).resolve().parents[2]

# Per mockup: readings per metric (checked by hand against the files and the data README:
# DMTF rackmount: 41 listed sensors, 10 PS2 sensors without a reading; Apollo: 65 temperatures
# of which 12 Absent, 15 fans in percent, 6 PSU bays of which 2 Absent; Cray EX235n: 255
# sensors of which 8 GPU power sensors have no Reading).
EXPECTED = {
    "dmtf-public-rackmount1": {"bmc_temp_degc": 8, "bmc_voltage_v": 6, "bmc_current_a": 6, "bmc_power_w": 3,
                               "bmc_energy_j_total": 2, "bmc_frequency_hz": 1, "bmc_percent_pct": 5, "bmc_fan_pct": 4,
                               "bmc_fan_rpm": 4, "bmc_psu_capacity_w": 1, "bmc_psu_input_power_w": 1,
                               "bmc_psu_output_power_w": 1, "bmc_psu_input_voltage_v": 1, "bmc_power_limit_w": 1},
    "dmtf-public-liquid-cooled-server": {"bmc_temp_degc": 12, "bmc_voltage_v": 6, "bmc_current_a": 6, "bmc_power_w": 3,
                                         "bmc_energy_j_total": 2, "bmc_frequency_hz": 1, "bmc_percent_pct": 7,
                                         "bmc_fan_pct": 2, "bmc_fan_rpm": 2, "bmc_psu_capacity_w": 1,
                                         "bmc_psu_input_power_w": 1, "bmc_psu_output_power_w": 1,
                                         "bmc_psu_input_voltage_v": 1, "bmc_power_limit_w": 1},
    "hpe-apollo6500-xl675d-a100": {"bmc_temp_degc": 53, "bmc_fan_pct": 15, "bmc_power_w": 1, "bmc_psu_capacity_w": 4,
                                   "bmc_psu_output_power_w": 4, "bmc_psu_input_voltage_v": 4},
    "hpe-cray-ex235n": {"bmc_temp_degc": 69, "bmc_voltage_v": 82, "bmc_current_a": 37, "bmc_power_w": 49,
                        "bmc_energy_j_total": 10},
}
LOG_ENTRIES = {"dmtf-public-rackmount1": 3, "dmtf-public-liquid-cooled-server": 2, "hpe-apollo6500-xl675d-a100": 40,
               "hpe-cray-ex235n": 163}


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return make_cert(tmp_path_factory.mktemp("bmc-tls"))


def _read(bmc: FakeBmc, verify) -> tuple:
    conn = RedfishConnection(BmcTarget("srv", bmc.url, bmc.user, bmc.password, verify, 5.0))
    try:
        return read_bmc(conn.fetch), read_logs(conn.fetch, None, time.time_ns())[0]
    finally:
        conn.close()


def _value(snap, sensor, metric, chassis=None):
    [v] = [r.value for r in snap.readings if r.sensor == sensor and r.metric == metric
           and (chassis is None or r.chassis == chassis)]
    return v


@pytest.mark.parametrize("mockup", sorted(EXPECTED))
def test_every_reading_of_each_mockup_over_https(mockup, tls):
    assert (MOCKUPS / mockup / "index.json").is_file(), "../shared/data/redfish is missing"
    bmc = FakeBmc(mockup, tls=tls).start()
    try:
        snap, entries = _read(bmc, str(tls[0]))   # TLS verified against this BMC's CA
    finally:
        bmc.stop()
    got = Counter(r.metric for r in snap.readings if r.metric not in ("bmc_present", "bmc_health"))
    assert dict(got) == EXPECTED[mockup]
    assert len(entries) == LOG_ENTRIES[mockup]
    assert bmc.logins == 1  # one session login, not one per request
    print(f"{mockup}: {sum(got.values())} readings, {len(snap.missing)} missing with a reason, "
          f"{len(snap.problems)} problems, {len(entries)} log entries")


def test_values_units_and_quirks(tls):
    bmc = FakeBmc("dmtf-public-rackmount1").start()
    try:
        snap, entries = _read(bmc, True)
    finally:
        bmc.stop()
    assert _value(snap, "chassis:power", "bmc_power_w") == 374.0          # EnvironmentMetrics, not the legacy 344
    assert _value(snap, "chassis:power", "bmc_power_limit_w") == 500.0
    assert _value(snap, "sensor:CPU1Temp", "bmc_temp_degc") == 44.0         # a temperature with units only ("Cel")
    assert _value(snap, "sensor:PS1Energy", "bmc_energy_j_total") == pytest.approx(
        json.loads((MOCKUPS / "dmtf-public-rackmount1/Chassis/1U/Sensors/PS1Energy/index.json").read_text())["Reading"] * 3.6e6)
    assert _value(snap, "psu:Bay1", "bmc_psu_input_power_w") == 937.4
    assert _value(snap, "psu:Bay1", "bmc_health") == 1.0                     # Warning: predicted failure
    assert [(p.bay, p.present) for p in snap.psus] == [("Bay1", True), ("Bay2", False)]
    assert _value(snap, "fan:Bay1", "bmc_fan_rpm") == 2200.0 and _value(snap, "fan:Bay1", "bmc_fan_pct") == 45.0
    assert any("PS2InputPower" in m for m in snap.missing)
    assert {e.severity for e in entries} <= {"info", "warning", "critical"}


def test_liquid_cooling_legacy_hpe_and_cray_quirks():
    for mockup in ("dmtf-public-liquid-cooled-server", "hpe-apollo6500-xl675d-a100", "hpe-cray-ex235n"):
        bmc = FakeBmc(mockup).start()
        try:
            snap, entries = _read(bmc, True)
        finally:
            bmc.stop()
        if mockup.startswith("dmtf"):
            assert _value(snap, "coolant:CPU1:SupplyTemperatureCelsius", "bmc_temp_degc") == 14.8
            assert _value(snap, "coolant:CPU1:ReturnTemperatureCelsius", "bmc_temp_degc") == 38.2
        elif mockup.startswith("hpe-apollo"):
            [power] = [r for r in snap.readings if r.metric == "bmc_power_w"]   # legacy PowerControl
            assert power.value == 894.0 and power.sensor.startswith("chassis:")
            gpu = [r.value for r in snap.readings if r.metric == "bmc_temp_degc" and "GPU" in r.sensor]
            assert len(gpu) == 9 and set(gpu) == {50.0}
            assert sum(p.present for p in snap.psus) == 4 and len(snap.psus) == 6
            assert all(r.metric != "bmc_fan_rpm" for r in snap.readings)       # iLO reports fans in percent
            assert any(e.time_ns is None for e in entries)                     # Created 0000-00-00: no time, kept
        else:
            assert len(snap.problems) == 7 and all("ResourceMissingAtURI" in p for p in snap.problems)
            sev = Counter(e.severity for e in entries)
            assert sev == {"warning": 77, "info": 76, "critical": 10}
            assert sum("GPUSubsystemGPU" in m and "no Reading property" in m for m in snap.missing) == 8
            assert _value(snap, "sensor:GPUSubsystemGPU0Temperature", "bmc_temp_degc", "Node0") == 30.0


def test_tls_is_verified_by_default(tls):
    bmc = FakeBmc("dmtf-public-rackmount1", tls=tls).start()
    try:
        with pytest.raises(BmcUnavailable, match="SSL|certificate|CERTIFICATE"):
            RedfishConnection(BmcTarget("srv", bmc.url, bmc.user, bmc.password, True, 5.0))  # system CAs only
        conn = RedfishConnection(BmcTarget("srv", bmc.url, bmc.user, bmc.password, False, 5.0))  # explicit opt-out
        assert read_bmc(conn.fetch).readings
        conn.close()
    finally:
        bmc.stop()


def test_a_rotated_session_token_logs_in_again():
    bmc = FakeBmc("dmtf-public-rackmount1").start()
    try:
        conn = RedfishConnection(BmcTarget("srv", bmc.url, bmc.user, bmc.password, True, 5.0))
        first = len(read_bmc(conn.fetch).readings)
        bmc.forget_sessions()
        assert len(read_bmc(conn.fetch).readings) == first
        assert bmc.logins == 2
        conn.close()
        with pytest.raises(BmcUnavailable):
            RedfishConnection(BmcTarget("srv", bmc.url, bmc.user, "wrong", True, 5.0)).fetch("/redfish/v1/Chassis")
    finally:
        bmc.stop()


def _cray_clock():
    return int(datetime(2022, 4, 12, 17, 30, tzinfo=timezone.utc).timestamp() * 1e9)


def test_logs_are_incremental_and_never_repeat_after_a_restart(tmp_path):
    bmc = FakeBmc("hpe-cray-ex235n").start()
    state = tmp_path / "cursors.json"
    target = BmcTarget("blade-1", bmc.url, bmc.user, bmc.password, True, 5.0)
    try:
        poller = RedfishPoller([target], state_path=state, clock=_cray_clock)
        _, events, _ = poller.poll()
        logs = [e for e in events if e.kind == "bmc_log"]
        assert logs and all(_cray_clock() - e.time_ns <= 3600e9 for e in logs)   # first contact: the last hour only
        assert poller.poll()[1] == []                                             # nothing new
        poller.close()
        again = RedfishPoller([target], state_path=state, clock=_cray_clock)     # a restart
        assert [e for e in again.poll()[1] if e.kind == "bmc_log"] == []
        again.close()
    finally:
        bmc.stop()


def test_misbehaving_bmcs_do_not_stop_the_others(tmp_path):
    good = FakeBmc("dmtf-public-rackmount1").start()
    broken = FakeBmc("dmtf-public-rackmount1").start()
    hung = FakeBmc("dmtf-public-rackmount1").start()
    hung.faults["/redfish/v1"] = "hang"
    broken.faults["/redfish/v1/Chassis/1U/Sensors/CPU1Temp"] = 500
    broken.faults["/redfish/v1/Chassis/1U/EnvironmentMetrics"] = "garbage"
    now = {"t": 0.0}
    targets = [BmcTarget(n, b.url, b.user, b.password, True, 1.0) for n, b in
               (("good", good), ("broken", broken), ("hung", hung))]
    poller = RedfishPoller(targets, clock=lambda: 1, monotonic=lambda: now["t"], backoff_s=10)
    try:
        started = time.monotonic()
        batches, events, problems = poller.poll()
        assert time.monotonic() - started < 15
        devices = {str(d) for b in batches for d in b.tags["device"]}
        assert devices == {"good", "broken"}
        assert [e.kind for e in events if e.target.get("device") == "hung"] == ["agent_unreachable"]
        assert any("broken" in p and "CPU1Temp" in p and "500" in p for p in problems)
        assert any("broken" in p and "EnvironmentMetrics" in p and "not JSON" in p for p in problems)
        # the broken BMC's other readings are still there
        bmc_rows = [b for b in batches if b.measurement == "bmc"]
        assert sum(len(b) for b in bmc_rows if set(b.tags["device"]) == {"broken"}) > 20
        # a sensor that disappears is said (missing), not a crash
        broken.faults["/redfish/v1/Chassis/1U/Sensors/IntakeTemp"] = 404
        hung.faults.clear()
        now["t"] = 5.0                                 # inside the hung BMC's backoff: not asked again
        _, events, _ = poller.poll()
        assert not [e for e in events if e.target.get("device") == "hung"]
        now["t"] = 11.0                                # after it: asked, answers, recovered
        batches, events, problems = poller.poll()
        assert [e.kind for e in events if e.target.get("device") == "hung"] == ["agent_recovered"]
        assert not any(r == "sensor:IntakeTemp" for b in batches if b.measurement == "bmc"
                       for r, d in zip(b.tags["sensor"], b.tags["device"]) if d == "broken")
    finally:
        poller.close()
        for b in (good, broken, hung):
            b.faults.clear()
            b.stop()


def test_server_summary_feeds_the_existing_rules():
    bmc = FakeBmc("hpe-apollo6500-xl675d-a100").start()
    try:
        poller = RedfishPoller([BmcTarget("gpu-07", bmc.url, bmc.user, bmc.password, True, 5.0)], clock=lambda: 7)
        batches, _, _ = poller.poll()
        poller.close()
    finally:
        bmc.stop()
    [srv] = [b for b in batches if b.measurement == "server"]
    assert srv.fields["server_power_w"][0] == 894.0
    assert srv.fields["server_psu_ok"][0] == 4.0
    assert 15 <= srv.fields["server_inlet_temp_degc"][0] <= 35


def test_eventservice_push_and_bad_payloads():
    evs = entry_from_event({"@odata.type": "#Event.v1_7_0.Event", "Id": "9", "Events": [
        {"EventId": "9-1", "EventTimestamp": "2026-12-01T10:00:00Z", "MessageSeverity": "Critical",
         "MessageId": "Power.1.0.PowerSupplyFailed", "Message": "Power supply 'PSU 2' has failed.",
         "OriginOfCondition": {"@odata.id": "/redfish/v1/Chassis/1U/PowerSubsystem/PowerSupplies/Bay2"}}]}, 1)
    assert evs[0].severity == "critical" and evs[0].origin.endswith("Bay2") and "PSU 2" in evs[0].message
    with pytest.raises(ValueError, match="Events"):
        entry_from_event({"Id": "x"}, 1)


def test_cli_poll_json(tls):
    bmc = FakeBmc("hpe-cray-ex235n", tls=tls).start()
    try:
        env = {"PATH": "/usr/bin:/bin", "BMC_PW": bmc.password}
        p = subprocess.run([sys.executable, "-m", "dcops.cli", "redfish", "poll", "--target", bmc.url, "--user", bmc.user,
                            "--password-env", "BMC_PW", "--ca", str(tls[0]), "--logs", "--format", "json"],
                           capture_output=True, text=True, timeout=120, env=env, cwd=REPO)
        assert p.returncode == 0, p.stderr
        out = json.loads(p.stdout)
        assert len(out["readings"]) == 247 and len(out["log_entries"]) == 163
        assert {r["unit"] for r in out["readings"]} == {"degC", "V", "A", "W", "J"}
        assert bmc.password not in p.stdout + p.stderr
        bad = subprocess.run([sys.executable, "-m", "dcops.cli", "redfish", "poll", "--target", bmc.url, "--user", "x",
                              "--password-env", "BMC_PW", "--format", "json"], capture_output=True, text=True,
                             timeout=120, env=env, cwd=REPO)
        assert bad.returncode == 1 and "Traceback" not in bad.stderr and "certificate" in bad.stderr.lower()
    finally:
        bmc.stop()


def test_eventservice_subscription_and_pushes_end_to_end():
    """The role's receiver: subscribe at the BMC, the BMC pushes a PSU failure, it is an event at
    once; a push with another Context or a body that is no Redfish Event is refused."""
    import threading as _th

    from waitress.server import create_server

    from dcops.collectors.redfish_role import EventReceiver, subscribe

    bmc = FakeBmc("dmtf-public-rackmount1").start()
    got: list = []
    receiver = EventReceiver({"gpu-07": "tok-gpu-07"}, got.extend, lambda s: {"device": s, "rack": "R1"})
    server = create_server(receiver, host="127.0.0.1", port=0, threads=2)
    _th.Thread(target=server.run, daemon=True).start()
    try:
        conn = RedfishConnection(BmcTarget("gpu-07", bmc.url, bmc.user, bmc.password, True, 5.0))
        where = subscribe(conn, f"http://127.0.0.1:{server.effective_port}/redfish/events/gpu-07", "tok-gpu-07")
        conn.close()
        assert where.endswith("/Subscriptions/1") and bmc.subscriptions[0]["Protocol"] == "Redfish"
        status = bmc.push([{"EventId": "1", "MessageSeverity": "Critical", "MessageId": "Power.1.0.PowerSupplyFailed",
                            "Message": "Power supply 'PSU 2' has failed.", "EventTimestamp": "2026-12-01T10:00:00Z"}])
        assert status == 200
        assert [(e.kind, e.severity, e.target["device"]) for e in got] == [("bmc_log", "critical", "gpu-07")]
        bmc.subscriptions[0]["Context"] = "forged"
        assert bmc.push([{"EventId": "2", "Message": "x"}]) == 403
        bmc.subscriptions[0]["Context"] = "tok-gpu-07"
        import urllib.error
        import urllib.request

        req = urllib.request.Request(f"http://127.0.0.1:{server.effective_port}/redfish/events/gpu-07",
                                     data=json.dumps({"Context": "tok-gpu-07", "Id": "3"}).encode())
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(req, timeout=5)
        assert exc.value.code == 400 and b"Events" in exc.value.read()
        assert len(got) == 1 and receiver.refused == 2
    finally:
        server.close()
        bmc.stop()
