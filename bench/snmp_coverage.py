"""How much of what LibreNMS reads would we read on a device our profiles were NOT written against?

Every vendor profile was written while looking at the 42 LibreNMS recordings it is scored on
(tests/integration/test_snmp_snmpsim.py: same canonical unit, value within 1 %), so that score
is in-sample. This bench serves the same recordings with snmpsim and scores three ways, with the
test's own harness and comparison (tests/integration/snmp_fixtures.py, imported, not copied):

(a) normal: `poll_agent` with every profile, auto-detected (the test's number);
(b) unknown vendor: `poll_agent` with only the standard-MIB profiles (`standard: true`:
    UPS-MIB, ENTITY-SENSOR-MIB), auto-detected as for any device: what a device of a vendor
    we have no profile for gets. A device that answers no standard MIB gets nothing;
(c) leave-family-out: for each vendor family (the vendor profile (a) picked) with >= 2
    recordings, each recording keeps only the family's sensor maps (an OID + row pattern of
    the profile) that produced a reading on ANOTHER recording of the same family, plus the
    standard-MIB maps (read on any device that serves them). A proxy for "a new model of a
    family we know". Same agent walk, reduced profile, same comparison.

Caveats: (c) is still optimistic (a map's scale was checked on both models while the profile
was written) and pessimistic (maps only one model has are dropped even where right); the
standard UPS-MIB profile itself was checked against 4 of these recordings.

    .venv/bin/python bench/snmp_coverage.py

Prints a per-device table, a per-family summary, and as the last line one JSON object.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import json
import math
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dcops.collectors.snmp_engine import SnmpClient  # noqa: E402
from dcops.collectors.snmp_mapping import Snapshot, map_snapshot_full  # noqa: E402
from dcops.collectors.snmp_poller import poll_agent  # noqa: E402
from dcops.collectors.snmp_profiles import Profile, default_profiles  # noqa: E402
from dcops.site import SnmpTarget  # noqa: E402

_spec = importlib.util.spec_from_file_location("snmp_fixtures", REPO / "tests" / "integration" / "snmp_fixtures.py")
fx = importlib.util.module_from_spec(_spec)
sys.modules["snmp_fixtures"] = fx
_spec.loader.exec_module(fx)

SHARED = (REPO.parent / "shared" / "data").resolve()


def map_key(s) -> tuple[str, str | None]:
    """A sensor map's identity across profiles (what `combine` dedups on)."""
    return (s.oid, s.suffix.pattern if s.suffix else None)


def score(device: str, readings, missing, recording, sensors) -> tuple[int, int, list]:
    verdicts = fx.compare_with_librenms(device, readings, sensors, recording, missing)
    return sum(v.ok for v in verdicts), len(verdicts), [v for v in verdicts if not v.ok]


def same_value_elsewhere(failed, readings, passed_oids) -> int:
    """Upper bound for a failed sensor: a reading from ANOTHER OID with an accepted unit and the
    same value (1 %), each reading used once. LibreNMS's oracle is per OID, so a standard-MIB
    reading of a quantity LibreNMS takes from the vendor MIB fails the strict comparison; this
    counts those (and also coincidences: 0 A matches any 0 A)."""
    free = [r for r in readings if r.oid not in passed_oids]
    n = 0
    for v in failed:
        units = (fx.CLASS_UNITS[v.sensor_class][0],) + fx.ALSO_UNITS.get(v.sensor_class, ())
        hit = next((r for r in free if r.unit in units and math.isclose(r.value, v.expected, rel_tol=0.01, abs_tol=1e-9)), None)
        if hit is not None:
            free.remove(hit)
            n += 1
    return n


async def walk(client: SnmpClient, target: SnmpTarget, profile: Profile) -> Snapshot:
    """What the poller's first round fetches for `profile` (the same walk `poll_agent` does)."""
    s = await client.session(target)
    if profile.walk_roots:
        tables, _, scalars = await client.walk(s, profile.walk_roots, scalars=profile.get_oids)
    else:
        tables, scalars = {}, (await client.get(s, profile.get_oids) if profile.get_oids else {})
    return Snapshot(scalars, tables)


def exercised(profile: Profile, snap: Snapshot) -> set:
    """The maps of `profile` that produce at least one reading from this snapshot, each alone."""
    out = set()
    for s in profile.sensors:
        readings, _, _ = map_snapshot_full(dataclasses.replace(profile, sensors=(s,)), snap)
        if readings:
            out.add(map_key(s))
    return out


def main() -> int:
    t_start = time.perf_counter()
    recordings = sorted((SHARED / "snmprec").glob("*.snmprec"))
    every = default_profiles()
    standard = {n: p for n, p in every.items() if p.standard}
    standard_keys = {map_key(s) for p in standard.values() for s in p.sensors}
    rows: dict[str, dict] = {}
    timings: dict[str, float] = {}

    with fx.Snmpsim(SHARED / "snmprec") as sim:
        timings["snmpsim_start_s"] = time.perf_counter() - t_start
        target = lambda f: SnmpTarget(port=sim.port, community=f.stem, timeout_s=5, retries=1)  # noqa: E731

        async def run_all():
            client = SnmpClient()
            try:
                for mode, profiles in (("normal", every), ("unknown_vendor", standard)):
                    t0 = time.perf_counter()
                    for f in recordings:
                        res = await poll_agent(client, target(f), profiles)
                        row = rows.setdefault(f.stem, {"file": f})
                        row[mode] = res
                    timings[f"{mode}_s"] = time.perf_counter() - t0
                # (c): the walk the normal profile does, kept for the per-map attribution
                t0 = time.perf_counter()
                for f in recordings:
                    res = rows[f.stem]["normal"]
                    if res.ok and not res.profile_obj.standard:
                        rows[f.stem]["snap"] = await walk(client, target(f), res.profile_obj)
                timings["leave_family_out_walks_s"] = time.perf_counter() - t0
            finally:
                client.close()

        asyncio.run(run_all())

    t0 = time.perf_counter()
    report, sanity = {}, []
    for dev, row in rows.items():
        rec = fx.read_snmprec(row["file"])
        sensors = fx.librenms_sensors(SHARED / "librenms-expected" / f"{dev}.json")
        # LibreNMS sensors whose OID the recording lacks (LibreNMS shows 0): they pass when we read nothing
        out = {"sensors": len(sensors), "absent": sum(s["sensor_oid"].lstrip(".") not in rec for s in sensors)}
        for mode in ("normal", "unknown_vendor"):
            res = row[mode]
            readings = res.readings if res.ok else []
            ok, n, bad = score(dev, readings, res.missing if res.ok else [], rec, sensors)
            out[mode] = ok
            out[f"{mode}_profile"] = res.profile if res.ok else "-"
            if mode == "unknown_vendor":
                passed = {s["sensor_oid"].lstrip(".") for s in sensors} - {v.oid for v in bad}
                out["unknown_vendor_loose"] = ok + same_value_elsewhere(bad, readings, passed)
        res = row["normal"]
        family = res.profile.split("+")[0] if res.ok and not res.profile_obj.standard else None
        out["family"] = family
        if "snap" in row:
            row["exercised"] = exercised(res.profile_obj, row["snap"])
            again, _, _ = map_snapshot_full(res.profile_obj, row["snap"])
            if sorted((r.oid, r.metric, r.value) for r in again) != sorted((r.oid, r.metric, r.value) for r in res.readings):
                sanity.append(dev)  # the second walk did not give the poll's readings
        out["_rec"], out["_sensors"] = rec, sensors
        report[dev] = out

    families: dict[str, list[str]] = defaultdict(list)
    for dev, out in report.items():
        if out["family"]:
            families[out["family"]].append(dev)
    lfo_families = {fam: devs for fam, devs in sorted(families.items()) if len(devs) >= 2}
    fam_summary = {}
    for fam, devs in lfo_families.items():
        summ = {"recordings": devs, "sensors": 0, "normal": 0, "unknown_vendor": 0, "leave_family_out": 0,
                "vendor_maps_used": 0, "vendor_maps_shared": 0}
        used_any = set().union(*(rows[d]["exercised"] for d in devs)) - standard_keys
        shared_all = set.intersection(*(rows[d]["exercised"] for d in devs)) - standard_keys
        summ["vendor_maps_used"], summ["vendor_maps_shared"] = len(used_any), len(shared_all)
        for dev in devs:
            others = set().union(*(rows[d]["exercised"] for d in devs if d != dev))
            prof = rows[dev]["normal"].profile_obj
            keep = tuple(s for s in prof.sensors if map_key(s) in standard_keys or map_key(s) in others)
            readings, missing, _ = map_snapshot_full(dataclasses.replace(prof, sensors=keep), rows[dev]["snap"])
            out = report[dev]
            ok, _, _ = score(dev, readings, missing, out["_rec"], out["_sensors"])
            out["leave_family_out"] = ok
            out["lfo_maps"] = f"{sum(map_key(s) not in standard_keys for s in keep)}/{sum(map_key(s) not in standard_keys for s in prof.sensors)}"
            for k in ("sensors", "normal", "unknown_vendor", "leave_family_out"):
                summ[k] += out[k]
        fam_summary[fam] = summ
    timings["scoring_s"] = time.perf_counter() - t0

    # ---- per-device table
    w = max(len(d) for d in report)
    print(f"{'device':{w}}  {'family (profile in a)':28} {'n':>3}  {'(a) normal':>10}  {'(b) unknown vendor':>18} {'(b) loose':>9}  "
          f"{'(b) profile':22} {'(c) LFO':>7}  vendor maps kept")
    for dev, out in report.items():
        n = out["sensors"]
        c = f"{out['leave_family_out']:3}/{n:<3}" if "leave_family_out" in out else "     - "
        print(f"{dev:{w}}  {out['normal_profile']:28} {n:3}  {out['normal']:6}/{n:<3}  {out['unknown_vendor']:14}/{n:<3} {out['unknown_vendor_loose']:9}  "
              f"{out['unknown_vendor_profile']:22} {c:>7}  {out.get('lfo_maps', '')}")

    print("\nper family (vendor profile with >= 2 recordings): sensors reproduced, (a) / (b) / (c)")
    for fam, s in fam_summary.items():
        print(f"  {fam:14} {len(s['recordings'])} rec, {s['sensors']:3} sensors: {s['normal']:3} / {s['unknown_vendor']:3} / "
              f"{s['leave_family_out']:3}   vendor maps read on any: {s['vendor_maps_used']}, on all: {s['vendor_maps_shared']}  "
              f"({', '.join(s['recordings'])})")
    if sanity:
        print(f"WARNING: the attribution walk differs from the poll on {sanity}")

    total = sum(o["sensors"] for o in report.values())
    frac = lambda a, b: round(a / b, 4) if b else None  # noqa: E731
    a = sum(o["normal"] for o in report.values())
    b = sum(o["unknown_vendor"] for o in report.values())
    b_loose = sum(o["unknown_vendor_loose"] for o in report.values())
    absent = sum(o["absent"] for o in report.values())
    lfo = [o for o in report.values() if "leave_family_out" in o]
    n_c = sum(o["sensors"] for o in lfo)
    c_a, c_b, c_c = (sum(o[k] for o in lfo) for k in ("normal", "unknown_vendor", "leave_family_out"))
    timings["total_s"] = time.perf_counter() - t_start
    result = {
        "devices": len(report), "sensors": total,
        "sensors_absent_from_recording": absent,  # pass in every mode when nothing is read for them
        "normal": {"reproduced": a, "fraction": frac(a, total), "fraction_without_absent": frac(a - absent, total - absent)},
        "unknown_vendor": {"reproduced": b, "fraction": frac(b, total),
                           "fraction_without_absent": frac(b - absent, total - absent),
                           "loose_same_value_other_oid": b_loose, "loose_fraction": frac(b_loose, total),
                           "devices_with_any_profile": sum(o["unknown_vendor_profile"] != "-" for o in report.values()),
                           "devices_with_any_reproduced": sum(o["unknown_vendor"] > 0 for o in report.values())},
        "leave_family_out": {"families": len(lfo_families), "devices": len(lfo), "sensors": n_c,
                             "reproduced": c_c, "fraction": frac(c_c, n_c),
                             "absent_from_recording": (c_abs := sum(o["absent"] for o in lfo)),
                             "fraction_without_absent": frac(c_c - c_abs, n_c - c_abs),
                             "same_devices_normal": c_a, "same_devices_normal_fraction": frac(c_a, n_c),
                             "same_devices_unknown_vendor": c_b, "same_devices_unknown_vendor_fraction": frac(c_b, n_c),
                             "per_family": {f: [s["sensors"], s["normal"], s["unknown_vendor"], s["leave_family_out"]]
                                            for f, s in fam_summary.items()}},
        "attribution_mismatch": sanity,
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
