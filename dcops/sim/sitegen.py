"""Synthetic sites of any size, for benchmarks and scale tests.

`synthetic_site(10_000)` gives racks of 8 servers x 8 accelerators (GPUs and, by default, a
quarter NPUs), dual-fed from floor PDUs on two UPSes per hall, with N+1 CRAC zones of two rows.
"""

from __future__ import annotations

import math

from dcops.site import SiteConfig

__all__ = ["synthetic_site"]


def synthetic_site(n_accel: int = 10_000, npu_share: float = 0.25, racks_per_row: int = 10,
                   rows_per_hall: int = 8, name: str = "bench") -> SiteConfig:
    per_rack = 64
    n_racks = max(1, math.ceil(n_accel / per_rack))
    n_rows = math.ceil(n_racks / racks_per_row)
    n_halls = math.ceil(n_rows / rows_per_hall)
    gpu = [{"name": f"S{i:02d}", "kind": "gpu_server", "idle_w": 1200,
            "accelerators": {"vendor": "nvidia", "model": "H100-SXM5-80GB", "count": 8, "tdp_w": 700}} for i in range(1, 9)]
    npu = [{"name": f"S{i:02d}", "kind": "npu_server", "idle_w": 600,
            "accelerators": {"vendor": "rebellions", "model": "RBLN-CA22", "count": 8, "tdp_w": 150,
                             "memory_bytes": 16 * 2**30}} for i in range(1, 9)]
    halls = []
    rack_no = 0
    n_npu_racks = int(round(n_racks * npu_share))
    for h in range(n_halls):
        hall = f"H{h + 1}"
        rows, pdus, units, zones = [], [], [], []
        for r in range(rows_per_hall):
            if rack_no >= n_racks:
                break
            row = f"{hall}-R{r + 1}"
            racks = []
            for k in range(racks_per_row):
                if rack_no >= n_racks:
                    break
                template = "npu" if rack_no < n_npu_racks else "gpu"
                racks.append({"name": f"{row}-{k + 1:02d}", "template": template,
                              "feeds": {"A": f"PDU-{row}-A", "B": f"PDU-{row}-B"}})
                rack_no += 1
            rows.append({"name": row, "racks": racks})
            pdus += [{"name": f"PDU-{row}-{s}", "ups": f"UPS-{hall}-{s}", "capacity_kw": 800} for s in "AB"]
        for z in range(0, len(rows), 2):
            zrows = [x["name"] for x in rows[z:z + 2]]
            zunits = [f"CRAC-{hall}-{len(units) + i}" for i in range(1, 4)]  # three of its own per zone
            units += [{"name": u, "capacity_kw": 600} for u in zunits]
            zones.append({"name": f"ZONE-{hall}-{z // 2 + 1}", "units": zunits, "rows": zrows, "redundancy": 1})
        halls.append({"name": hall, "upses": [{"name": f"UPS-{hall}-{s}", "capacity_kw": 6000} for s in "AB"],
                      "pdus": pdus, "cooling_units": units, "cooling_zones": zones, "rows": rows})
    return SiteConfig.model_validate({"site": name, "templates": {"gpu": gpu, "npu": npu}, "halls": halls})
