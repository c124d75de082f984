"""Synthetic sites pass the checks a site file gets, at every size the benchmarks use."""

from __future__ import annotations

import pytest

from dcops.site import _cross_check
from dcops.sim.sitegen import synthetic_site
from dcops.topology import Inventory


@pytest.mark.parametrize("n_accel, racks_per_row, rows_per_hall", [(1536, 4, 4), (10_000, 10, 8), (384, 2, 1)])
def test_synthetic_sites_are_valid_sites_with_n_plus_1_zones_of_their_own(n_accel, racks_per_row, rows_per_hall):
    site = synthetic_site(n_accel, racks_per_row=racks_per_row, rows_per_hall=rows_per_hall)
    assert _cross_check(site) == []  # names used once (a cooling unit was once listed in two zones)
    inv = Inventory(site)
    zones = inv.of_kind("zone")
    units = [u for z in zones for u in z.attrs["units"]]
    assert len(units) == len(set(units)) == len(inv.of_kind("cooling"))
    assert all(len(z.attrs["units"]) == 3 and z.attrs["redundancy"] == 1 for z in zones)
    assert inv.n_accel >= n_accel
