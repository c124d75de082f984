"""The simulator's facility devices served over real SNMP on loopback and polled back through
the unchanged collector: every value arrives, tagged with its place in the topology."""

from __future__ import annotations

import subprocess
import shutil
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from dcops.collectors.snmp_poller import run_poller
from dcops.collectors.snmp_simagent import serve_simulator, sim_poll_targets
from dcops.bus import TOPIC_SAMPLES, InProcessBus
from dcops.codec import decode_batch
from dcops.sim import Simulator


def test_simulated_devices_round_trip_through_snmp(small_site):
    sim = Simulator(small_site, seed=3)
    sim.step()
    snapshot = [b for b in sim.batches() if b.measurement in ("pdu", "ups", "cooling", "env")]
    frozen = SimpleNamespace(batches=lambda: snapshot, inventory=sim.inventory, interval_s=10.0)
    endpoints, stop = serve_simulator(frozen)
    try:
        assert set(endpoints) == {str(d) for b in snapshot for d in b.tags["device"]}
        if shutil.which("snmpget"):
            out = subprocess.run(["snmpget", "-v2c", "-c", "public", "-Oqv", f"127.0.0.1:{endpoints['UPS-A']}", "1.3.6.1.2.1.1.2.0"],
                                 capture_output=True, text=True, timeout=10)
            assert "8072.9999.9999.1" in out.stdout
        bus, stop_ev = InProcessBus(), threading.Event()
        th = threading.Thread(target=run_poller, args=(sim_poll_targets(frozen, endpoints, interval_s=60), bus, stop_ev), daemon=True)
        th.start()
        deadline = time.monotonic() + 20
        got = {}
        cons = bus.consumer([TOPIC_SAMPLES], "t")
        while time.monotonic() < deadline and len(got) < len(endpoints):
            for m in cons.poll(0.2, 1000):
                b = decode_batch(m.value)
                got[(b.measurement, b.tags["device"][0])] = b
        stop_ev.set()
        th.join(10)
    finally:
        stop()
    assert len(got) == len(endpoints)
    for truth in snapshot:
        for i, dev in enumerate(truth.tags["device"]):
            b = got[(truth.measurement, dev)]
            assert b.tags["site"][0] == small_site.site and b.tags["hall"][0] == "H1"
            for name, col in truth.fields.items():
                if np.isfinite(col[i]):
                    assert b.fields[name][0] == pytest.approx(col[i], rel=1e-12), (dev, name)
    env = got[("env", "R1-01-ENV")]
    assert env.tags["rack"][0] == "R1-01" and env.tags["row"][0] == "R1"


def test_simulator_events_arrive_as_traps(small_site):
    import asyncio

    from dcops.collectors.snmp_simagent import sim_device_tags
    from dcops.collectors.snmp_traps import TrapReceiver, TrapReceiverConfig
    from tests.integration.snmp_fixtures import free_udp_port

    sim = Simulator(small_site, seed=5)
    sim.step()
    port = free_udp_port()
    got = []

    async def scenario():
        endpoints, stop = serve_simulator(sim, trap_to=("127.0.0.1", port))
        rx = TrapReceiver(TrapReceiverConfig(host="127.0.0.1", port=port, devices=sim_device_tags(sim, endpoints)), got.extend)
        rx.start()
        try:
            sim.inject("ups_on_battery", "UPS-A", duration_s=30)
            sim.inject("pdu_breaker_trip", "PDU-A1", duration_s=30)
            sim.inject("crac_failure", "CRAC-1", duration_s=30)
            sim.run(6)
            deadline = asyncio.get_running_loop().time() + 10
            while len(got) < 6 and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.1)
        finally:
            rx.close()
            stop()

    asyncio.run(scenario())
    seen = sorted((e.kind, e.target["device"]) for e in got)
    assert seen == sorted([("ups_on_battery", "UPS-A"), ("ups_on_utility", "UPS-A"), ("breaker_trip", "PDU-A1"),
                           ("breaker_closed", "PDU-A1"), ("cooling_fault", "CRAC-1"), ("cooling_recovered", "CRAC-1")])
    assert all(e.target["hall"] == "H1" and e.target["site"] == small_site.site for e in got)
