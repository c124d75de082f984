"""The simulator's servers answer as Redfish BMCs: psu_failure and fan_failure arrive through the
collector as a real hall's would (PSU bay lined up with its feed), and a server with every feed
dead has a silent BMC. Also: `bmc:` in the site config, validated, secrets kept secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from dcops.batch import concat_batches
from dcops.collectors.redfish_client import BmcTarget
from dcops.collectors.redfish_poller import RedfishPoller, targets_from_site
from dcops.collectors.redfish_sim import sim_connect
from dcops.sim import Simulator
from dcops.site import load_site, site_from_text
from dcops.yamlconf import ConfigError

SITE = Path(__file__).resolve().parents[1] / "data" / "small-site.yaml"


@pytest.fixture()
def hall():
    cfg = load_site(SITE)
    sim = Simulator(cfg, seed=5)
    sim.step()
    servers = [s.name for s in sim.inventory.servers if len(s.attrs["psus"]) == 2][:3]
    targets = [BmcTarget(s, "https://sim", verify=True) for s in servers]
    poller = RedfishPoller(targets, sim.inventory, clock=lambda: sim.now_ns, connect=sim_connect(sim))
    yield sim, poller, servers
    poller.close()


def test_psu_failure_arrives_through_the_bmc_on_its_feed(hall):
    sim, poller, servers = hall
    batches, events, problems = poller.poll()
    assert not problems and not events
    srv = concat_batches([b for b in batches if b.measurement == "server"])
    assert {*srv.tags["device"]} == set(servers)
    assert (srv.fields["server_psu_ok"] == 2).all() and (srv.fields["server_psu_b_power_w"] > 0).all()
    sim.inject("psu_failure", servers[0], psu="B")
    sim.step()
    batches, events, _ = poller.poll()
    [e] = [e for e in events if e.kind == "psu_fault"]
    assert e.target["device"] == servers[0] and e.attributes["psu"] == "B" and e.attributes["bay"] == "Bay2"
    assert e.target["rack"] == sim.inventory.get(servers[0]).rack       # topology tags: correlates with feed B's PDU
    srv = concat_batches([b for b in batches if b.measurement == "server"])
    row = list(srv.tags["device"]).index(servers[0])
    assert srv.fields["server_psu_ok"][row] == 1 and srv.fields["server_psu_b_power_w"][row] == 0
    sim.clear(sim.labels[-1].fault_id)
    sim.step()
    assert [e.kind for e in poller.poll()[1]] == ["psu_recovered"]


def test_fan_failure_and_a_dark_server(hall):
    sim, poller, servers = hall
    poller.poll()
    sim.inject("fan_failure", servers[1])
    sim.step()
    _, events, _ = poller.poll()
    assert [(e.kind, e.target["device"], e.attributes["fan"]) for e in events] == [("fan_fault", servers[1], "Fan1")]
    rack = sim.inventory.get(servers[2]).rack
    feeds = sim.inventory.get(rack).attrs["feeds"]
    for pdu in feeds.values():
        sim.inject("pdu_breaker_trip", pdu)
    sim.step()
    _, events, problems = poller.poll()
    dark = [e for e in events if e.kind == "agent_unreachable"]
    assert {e.target["device"] for e in dark} >= {servers[2]}
    assert any("no standby power" in p for p in problems)


def test_bmc_in_the_site_config():
    text = SITE.read_text()
    assert "templates:" in text
    cfg = load_site(SITE)
    assert targets_from_site(cfg) == []
    import yaml

    doc = yaml.safe_load(text)
    first = next(iter(doc["templates"]))
    for srv in doc["templates"][first]:
        srv["bmc"] = {"url": "https://{server}-bmc.mgmt", "username": "dcops", "password": "hunter2-bmc",
                      "psu_feeds": {"PSU1": "A", "PSU2": "B"}}
    cfg = site_from_text(yaml.safe_dump(doc))
    targets = targets_from_site(cfg)
    assert targets and all(t.url == f"https://{t.name}-bmc.mgmt" for t in targets)
    assert dict(targets[0].psu_feeds) == {"PSU1": "A", "PSU2": "B"} and targets[0].verify is True
    assert "hunter2" not in repr(targets[0]) and "hunter2" not in repr(cfg)
    for srv in doc["templates"][first]:
        srv["bmc"] = {"url": "ftp://x", "psu_feeds": {"PSU1": "C"}}
    with pytest.raises(ConfigError) as exc:
        site_from_text(yaml.safe_dump(doc))
    assert "bmc" in str(exc.value) and "url" in str(exc.value)
