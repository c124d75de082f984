"""A runbook's power-cap actions through the agents' real control API (HTTP, signed tokens),
backed by the simulator: the zone's GPUs are capped, power and temperature respond, NPUs say
they cannot be capped, the rollback restores, and a forgotten cap expires by itself."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from waitress.server import create_server

from dcops.alerts.runbooks.executors import (EXECUTORS, ActionContext, ExecutorConfig, ExecutorRuntime,
                                             PowerCapOptions, PowerScopeOptions)
from dcops.collectors.power_api import ControlApi
from dcops.collectors.sim_agents import SimAgents
from dcops.sim import Simulator
from dcops.site import load_site
from dcops.topology import build_inventory

SITE = Path(__file__).resolve().parents[1] / "data" / "small-site.yaml"
KEY = "runbook-agent-key"


class Clock:
    t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture()
def hall():
    cfg = load_site(SITE)
    # a fixed afternoon (15:00 UTC), not the wall clock: the simulated load follows the time of
    # day, and at night the GPUs draw less than the 50 % cap, which then changes nothing
    sim = Simulator(cfg, seed=3, start_ns=(1_800_000_000 + 7 * 3600) * 1_000_000_000)
    for _ in range(6):
        sim.step()
    agents = SimAgents(sim)
    clock = Clock()
    audit: list[dict] = []
    api = ControlApi(agents.power_controllers(audit=audit.append, clock=clock), KEY.encode(), clock=clock)
    server = create_server(api, host="127.0.0.1", port=0, threads=4)
    threading.Thread(target=server.run, daemon=True).start()
    rt = ExecutorRuntime(ExecutorConfig(agent_url=f"http://127.0.0.1:{server.effective_port}/hosts/{{server}}",
                                        agent_token_key=KEY), inventory=build_inventory(cfg))
    yield sim, agents, api, rt, clock, audit
    server.close()


def _zone_with_gpus(sim):
    inv = sim.inventory
    for z in inv.of_kind("zone"):
        ks = [k for k, aid in enumerate(inv.accel_ids)
              if inv.get(inv.get(str(aid)).rack).attrs.get("zone") == z.name]
        if any(inv.accel_tags["vendor"][k] == "nvidia" for k in ks):
            return z.name, np.array(ks)
    raise AssertionError("the small site has no zone with GPUs")


def test_a_zone_cap_reaches_every_gpu_and_power_and_temperature_respond(hall):
    sim, agents, api, rt, clock, audit = hall
    zone, ks = _zone_with_gpus(sim)
    gpu = ks[sim.inventory.accel_tags["vendor"][ks] == "nvidia"]
    ctx = ActionContext("run9", "inc9", "cap", "alice", {"zone": zone, "component": zone})
    check = EXECUTORS["gpu_power_check"].run(PowerScopeOptions(scope="zone", accel="{zone}"), ctx, rt)
    power_before = float(np.nansum(sim.accel_values()["accel_power_w"][gpu]))
    temp_before = float(np.nanmean(sim.accel_values()["accel_temp_degc"][gpu]))
    res = EXECUTORS["gpu_power_cap"].run(PowerCapOptions(scope="zone", accel="{zone}", fraction=0.5, ttl_s=600), ctx, rt)
    assert res.ok, res.output
    assert np.allclose(sim.power_limit[gpu], 0.5 * sim.a_tdp[gpu])
    for _ in range(30):
        sim.step()
    vals = sim.accel_values()
    assert np.all(vals["accel_power_w"][gpu] <= sim.power_limit[gpu] * 1.01)  # the cap holds
    assert float(np.nansum(vals["accel_power_w"][gpu])) < 0.9 * power_before
    assert float(np.nanmean(vals["accel_temp_degc"][gpu])) < temp_before - 1.0
    assert any(a["action"] == "power_cap_set" and a["requested_by"] == "alice" and a["incident"] == "inc9"
               for a in audit)
    npu_servers = {a.host for a, _, _ in agents.npu_hosts}
    if npu_servers & set(res.data["servers"]):  # a mixed zone: the pre-check says the NPUs cannot be capped
        assert not check.ok and "rbln-stat" in check.output
    else:
        assert check.ok, check.output
    restore = EXECUTORS["gpu_power_restore"].run(PowerScopeOptions(scope="zone", accel="{zone}"), ctx, rt)
    assert restore.ok, restore.output
    assert np.allclose(sim.power_limit[gpu], sim.a_tdp[gpu])


def test_a_forgotten_cap_reverts_by_itself(hall):
    sim, agents, api, rt, clock, audit = hall
    zone, ks = _zone_with_gpus(sim)
    gpu = ks[sim.inventory.accel_tags["vendor"][ks] == "nvidia"]
    ctx = ActionContext("run9", "inc9", "cap", "alice", {"zone": zone, "component": zone})
    assert EXECUTORS["gpu_power_cap"].run(PowerCapOptions(scope="zone", accel="{zone}", watts=400, ttl_s=120),
                                          ctx, rt).ok
    assert np.all(sim.power_limit[gpu] <= 400.0)
    clock.t += 121
    api.expire_all()
    assert np.allclose(sim.power_limit[gpu], sim.a_tdp[gpu])
    assert sum(a["action"] == "power_cap_expired" for a in audit) == len(gpu)


def test_npus_are_reported_as_not_cappable(hall):
    sim, agents, api, rt, clock, audit = hall
    if not agents.npu_hosts:
        pytest.fail("the small site should have NPU servers")
    server = agents.npu_hosts[0][0].host
    ctx = ActionContext("r", "i", "s", "alice", {"server": server, "component": server})
    check = EXECUTORS["gpu_power_check"].run(PowerScopeOptions(scope="server", accel="{server}"), ctx, rt)
    assert not check.ok and "rbln-stat" in check.output
