from __future__ import annotations

import pytest

from dcops.topology import accel_id


def test_power_chain_downstream(small_inventory):
    inv = small_inventory
    down = inv.downstream("UPS-A")
    assert {"PDU-A1", "PDU-A2", "R1-01", "R2-03", "R1-03-S01", accel_id("R1-03-S01", 0)} <= down
    assert "UPS-B" not in down and "CRAC-1" not in down
    assert inv.racks_of_pdu["PDU-A1"] == ["R1-01", "R1-02", "R1-03"]
    assert inv.upstream("R1-03-S01:2") >= {"R1-03", "PDU-A1", "UPS-A", "R1", "Z1", "CRAC-1", "CRAC-2"}


def test_cooling_zone_reach(small_inventory):
    down = small_inventory.downstream("CRAC-3")
    assert {"Z2", "R2", "R2-01", "R2-02-S01"} <= down
    assert not any(small_inventory.get(c).row == "R1" for c in down)


def test_paths_and_resolution(small_inventory):
    inv = small_inventory
    aid = accel_id("R2-02-S01", 3)
    assert inv.path(aid) == "test/H1/R2/R2-02/R2-02-S01/3"
    assert inv.resolve("test/H1/R2/R2-02/R2-02-S01/3").name == aid
    assert inv.resolve("CRAC-4").attrs["unit_kind"] == "cdu"
    assert inv.get(aid).tags("test") == {"site": "test", "hall": "H1", "row": "R2", "rack": "R2-02",
                                         "device": "R2-02-S01", "accel": "3"}
    assert inv.accel_mask(["R2-02"]).sum() == 8


def test_part_of_the_site_holds_its_racks_and_every_halls_shared_equipment(small_inventory):
    inv = small_inventory
    part = inv.for_racks(["R1-02", "R2-03"])
    assert [r.name for r in part.racks] == ["R1-02", "R2-03"]
    assert set(part.accel_tags["rack"]) == {"R1-02", "R2-03"} and part.n_accel == inv.accel_mask(["R1-02", "R2-03"]).sum()
    for kind in ("ups", "pdu", "cooling", "zone"):
        assert [c.name for c in part.of_kind(kind)] == [c.name for c in inv.of_kind(kind)]
    assert part.downstream("UPS-A") <= inv.downstream("UPS-A") and "R1-02" in part.downstream("UPS-A")
    assert inv.for_racks([r.name for r in inv.racks]) is inv
    assert inv.for_racks([]).n_accel == 0 and not inv.for_racks([]).racks
    with pytest.raises(KeyError, match="R9-99"):
        inv.for_racks(["R9-99"])
