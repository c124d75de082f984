"""The Devices page's data on the demo site fed by the simulator: the tree, the grid, and panels
chosen by what each device reports."""

from __future__ import annotations

import pytest

from dcops.console import data_devices
from dcops.console.data import Context
from dcops.sim import Simulator
from dcops.store.duckdb_store import DuckDBStore

GPU_ONLY = {"accel_mem_temp_degc", "accel_sm_clock_mhz", "accel_mem_clock_mhz", "accel_power_limit_w"}


@pytest.fixture(scope="module")
def demo_ctx(demo_site):
    sim = Simulator(demo_site, seed=3)
    store = DuckDBStore(":memory:")
    for _ in range(3):
        sim.step()
        store.write(sim.batches())
    yield Context(store, sim.inventory)
    store.close()


@pytest.fixture(scope="module")
def demo_site():
    from dcops.site import load_site
    from tests.conftest import DEMO_SITE

    return load_site(DEMO_SITE)


def _first(ctx, vendor: str) -> str:
    inv = ctx.inventory
    return next(a for a in inv.accel_ids if inv.get(a).attrs["vendor"] == vendor)


def test_tree_has_halls_rows_racks_and_facility_groups(demo_ctx):
    inv = demo_ctx.inventory
    tree = data_devices.device_tree(demo_ctx)
    halls = [n for n in tree if n.kind == "hall"]
    assert [h.name for h in halls] == [h.name for h in inv.of_kind("hall")]
    assert sum(len(h.children) for h in halls) == len(inv.rows)
    assert sum(len(r.children) for h in halls for r in h.children) == len(inv.racks)
    assert all(not k.children for h in halls for r in h.children for k in r.children)  # racks closed
    groups = {n.label.split(" (")[0]: n for n in tree if n.kind == "group"}
    assert set(groups) >= {"UPS", "Floor PDUs", "CRAC, CRAH and in-row units", "CDUs", "Environment probes"}
    assert {c.name for c in groups["UPS"].children} == {u.name for u in inv.of_kind("ups")}
    assert {c.name for c in groups["CDUs"].children} == {
        c.name for c in inv.of_kind("cooling") if c.attrs["unit_kind"] == "cdu"}


def test_tree_opens_the_selected_branch_down_to_accelerators(demo_ctx):
    npu = _first(demo_ctx, "rebellions")
    comp = demo_ctx.inventory.get(npu)
    tree = data_devices.device_tree(demo_ctx, selected=npu)
    hall = next(n for n in tree if n.name == comp.hall)
    row = next(n for n in hall.children if n.name == comp.row)
    rack = next(n for n in row.children if n.name == comp.rack)
    server = next(n for n in rack.children if n.name == comp.device)
    assert hall.open and row.open and rack.open and server.open
    assert npu in [a.name for a in server.children] and "RBLN" in server.children[0].label


def test_tree_search_keeps_only_matching_branches(demo_ctx):
    tree = data_devices.device_tree(demo_ctx, "UPS-H1")
    assert [n.kind for n in tree] == ["hall", "group"]
    assert all(c.name.startswith("UPS-H1") for c in tree[1].children)


def test_npu_gets_no_gpu_only_panels_and_titles_are_for_people(demo_ctx):
    _, npu_panels = data_devices.device_panels(demo_ctx, _first(demo_ctx, "rebellions"))
    _, gpu_panels = data_devices.device_panels(demo_ctx, _first(demo_ctx, "nvidia"))
    npu_fields = {p.field for p in npu_panels}
    assert npu_fields & GPU_ONLY == set()
    assert {"accel_temp_degc", "accel_power_w", "accel_util_pct"} <= npu_fields
    assert GPU_ONLY <= {p.field for p in gpu_panels}
    assert all("_" not in p.title and p.unit for p in npu_panels + gpu_panels)


def test_panel_series_are_in_the_panels_units(demo_ctx):
    inv = demo_ctx.inventory
    rack = inv.racks[0].name
    panels, frame = data_devices.panel_series(demo_ctx, rack, 0, 2**62)
    power = next(p for p in panels if p.field == "rack_power_w")
    assert power.unit == "kW" and 1 < frame["rack_power_w"].max() < 200


def test_grid_lists_a_rack_worst_state_first_rank(demo_ctx):
    rack = demo_ctx.inventory.racks[0].name
    rows = data_devices.device_grid(demo_ctx, rack)
    kinds = {r["kind"] for r in rows}
    assert {"server", "accel"} <= kinds
    accel = [r for r in rows if r["kind"] == "accel"]
    assert all(r["state"] in ("healthy", "degraded", "down", "no data") and r["power_w"] is not None for r in accel)
    assert {r["state_rank"] for r in accel} <= set(data_devices.GRID_STATES.values())
    found = data_devices.device_grid(demo_ctx, text="CRAC")
    assert found and all("CRAC" in r["name"] for r in found)


def test_fleet_shows_requests_per_second_beside_tokens(demo_ctx):
    from dcops.console.data_series import _fleet_table
    from dcops.sim.model import SERVING

    table = _fleet_table(demo_ctx)
    assert (table["requests_per_s"] > 0).all() and (table["tokens_per_s"] > 0).all()
    ratio = table["tokens_per_s"] / table["requests_per_s"]
    assert ratio.to_numpy() == pytest.approx(SERVING.generation_tokens_per_request, rel=0.05)


def test_servers_and_facility_devices_carry_their_state(demo_site):
    sim = Simulator(demo_site, seed=4)
    inv = sim.inventory
    server = next(c.name for c in inv.of_kind("server"))
    store = DuckDBStore(":memory:")
    try:
        for _ in range(2):
            sim.step()
        sim.inject("pdu_breaker_trip", "PDU-H1-R2-A", 600)
        sim.inject("crac_failure", "CRAC-H1-4", 600)
        sim.inject("ups_on_battery", "UPS-H2-B", 600)
        sim.inject("psu_failure", server, 600)
        for _ in range(2):
            sim.step()
            store.write(sim.batches())
        ctx = Context(store, inv)
        names = ["PDU-H1-R2-A", "PDU-H1-R2-B", "CRAC-H1-4", "CRAC-H1-5", "UPS-H2-B", "UPS-H2-A", server]
        rows = {r["name"]: r for n in names for r in data_devices.device_grid(ctx, n) if r["name"] == n}
        assert {n: rows[n]["state"] for n in names} == {
            "PDU-H1-R2-A": "down", "PDU-H1-R2-B": "healthy", "CRAC-H1-4": "down", "CRAC-H1-5": "healthy",
            "UPS-H2-B": "degraded", "UPS-H2-A": "healthy", server: "degraded"}
        assert rows["PDU-H1-R2-B"]["power_w"] > 0 and rows["CRAC-H1-5"]["temp_degc"] is not None
        env = next(c.name for c in inv.of_kind("env"))
        assert data_devices.device_grid(ctx, env)[0]["state"] == "healthy"
    finally:
        store.close()
