"""Alarm storm: 10,000 raw alarms in one minute of simulated time on the demo site.

The storm: two CRACs of one N+1 zone fail (1,024 GPUs run hot and throttle, their racks and
servers too), both feeds of a row trip (64 servers down, 512 accelerators lost), a UPS goes
to battery, plus isolated noise on random accelerators; every symptom is re-signalled while
it lasts (what rules do every sample round), up to 10,000 raw alarm signals, fed in time
order with one reconcile per second of data time.

Measured twice in the same run on the same signals:
- correlated: the real pipeline (dedup, topology correlation, grouping, routing);
- baseline: the same pipeline with an empty correlation table, so every deduplicated alarm
  becomes its own incident and page (what a per-alarm pager would do).

Reports time to process, incidents, notifications, and peak traced memory of each, the
incidents' roots (component, probable cause, severity, members), a digest of them, and whether
a second correlated run with every second's signals shuffled (other arrival order, other alarm
ids) gives the same digest; the last line is one JSON object.

Growth (`--accelerators N`): the storm runs on the simulator's synthetic site of N
accelerators with the raw alarms scaled to the fleet (N raw alarms, at least 10,000), and the
steady state is measured too: the real pipeline (rules over every sample, correlation,
grouping) fed the simulator's polls of that site, one reconcile per poll, CPU per poll interval
per accelerator (`steady_cpu_us_per_accel_interval`), the alerter's everyday cost.

    python bench/alarm_storm.py [--site examples/demo-site.yaml] [--raw 10000] [--seed 0]
    python bench/alarm_storm.py --accelerators 100000 [--polls 6]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dcops.alerts.config import alerting_from_text  # noqa: E402
from dcops.alerts.correlation.correlator import Correlator  # noqa: E402
from dcops.alerts.pipeline import AlertPipeline  # noqa: E402
from dcops.alerts.alarms.signals import AlarmSignal  # noqa: E402
from dcops.alarm_types import EventType as ET, PerceivedSeverity as S, ProbableCause as PC  # noqa: E402
from dcops.site import load_site  # noqa: E402
from dcops.topology import build_inventory  # noqa: E402

NS = 1_000_000_000
T0 = 1_800_000_000 * NS
CFG = """
receivers:
  - {name: noc, type: webhook, url: "http://127.0.0.1:9/hook"}
route: {receiver: noc}
grouping: {group_wait_s: 10}
"""


def _sig(t_s: float, comp: str, rule: str, sev, et, pc, text: str, **labels) -> AlarmSignal:
    return AlarmSignal(T0 + int(t_s * NS), comp, rule, True, sev, et, pc, text, labels=labels)


def make_storm(inv, n_raw: int, seed: int) -> list[AlarmSignal]:
    rng = random.Random(seed)
    zone = inv.of_kind("zone")[0]
    cracs = list(zone.attrs["units"])[:2]
    hot_rows = set(zone.attrs["rows"])
    dark_row = inv.rows[-2].name
    dark_pdus = sorted({p for r in inv.racks if r.row == dark_row for p in r.attrs["feeds"].values()})
    ups = inv.of_kind("ups")[-1].name
    firsts: list[AlarmSignal] = []
    for i, c in enumerate(cracs):
        firsts.append(_sig(i * 2, c, "cooling_unit_fault", S.CRITICAL, ET.ENVIRONMENTAL, PC.HEATING_VENT_COOLING,
                           f"{c} stopped", unit_lost="true"))
    for p in dark_pdus:
        firsts.append(_sig(5, p, "pdu_breaker_trip", S.CRITICAL, ET.EQUIPMENT, PC.POWER_SUPPLY_FAILURE,
                           f"breaker tripped on {p}", unit_lost="true"))
    firsts.append(_sig(8, ups, "ups_on_battery", S.MAJOR, ET.EQUIPMENT, PC.COMMERCIAL_POWER_FAILURE, f"{ups} on battery"))
    symptoms: list[AlarmSignal] = []
    for r in inv.racks:
        if r.row in hot_rows:
            symptoms.append(_sig(rng.uniform(15, 40), r.name, "rack_inlet_hot", S.MINOR, ET.ENVIRONMENTAL,
                                 PC.TEMPERATURE_UNACCEPTABLE, f"{r.name} inlet hot"))
    for s in inv.servers:
        if s.row in hot_rows:
            symptoms.append(_sig(rng.uniform(20, 45), s.name, "server_inlet_hot", S.MAJOR, ET.ENVIRONMENTAL,
                                 PC.TEMPERATURE_UNACCEPTABLE, f"{s.name} inlet hot"))
        elif s.row == dark_row:
            symptoms.append(_sig(rng.uniform(5.5, 8), s.name, "server_down", S.CRITICAL, ET.EQUIPMENT,
                                 PC.UNDERLYING_RESOURCE_UNAVAILABLE, f"{s.name} down"))
    for a, row in zip(inv.accel_ids, inv.accel_tags["row"]):
        if row in hot_rows:
            symptoms.append(_sig(rng.uniform(20, 50), a, "accel_core_hot", S.MAJOR, ET.ENVIRONMENTAL,
                                 PC.TEMPERATURE_UNACCEPTABLE, f"{a} hot"))
            symptoms.append(_sig(rng.uniform(25, 55), a, "accel_thermal_throttle", S.MINOR, ET.QUALITY_OF_SERVICE,
                                 PC.PERFORMANCE_DEGRADED, f"{a} throttling"))
        elif row == dark_row:
            symptoms.append(_sig(rng.uniform(5.5, 9), a, "accel_lost", S.CRITICAL, ET.EQUIPMENT,
                                 PC.EQUIPMENT_MALFUNCTION, f"{a} lost"))
    others = [a for a, row in zip(inv.accel_ids, inv.accel_tags["row"]) if row not in hot_rows and row != dark_row]
    noise = [_sig(rng.uniform(0, 60), a, "gpu_xid_app" if k % 2 else "accel_hbm_hot",
                  S.WARNING if k % 2 else S.MINOR, ET.PROCESSING_ERROR if k % 2 else ET.ENVIRONMENTAL,
                  PC.SOFTWARE_ERROR if k % 2 else PC.TEMPERATURE_UNACCEPTABLE, "noise")
             for k, a in enumerate(rng.sample(others, 200))]
    signals = firsts + symptoms + noise
    # repeats: symptoms and roots signalled again each sample round while they last
    base = firsts + symptoms
    while len(signals) < n_raw:
        s = rng.choice(base)
        t = s.time_ns + rng.randrange(1, 6) * 10 * NS
        if t < T0 + 60 * NS:
            signals.append(AlarmSignal(t, s.component, s.rule, True, s.severity, s.event_type, s.probable_cause,
                                       s.specific_problem, labels=s.labels))
    signals = signals[:n_raw]
    signals.sort(key=lambda s: s.time_ns)
    return signals


def incident_digest(p) -> tuple[str, list[dict]]:
    """The incidents as content (root, cause, severity, member components), and their sha256."""
    alarms = p.manager.alarms
    by_inc: dict[str, list] = {}
    for a in alarms.values():
        if a.incident_id:
            by_inc.setdefault(a.incident_id, []).append(a)
    out = []
    for iid, members in by_inc.items():
        inc = p.incidents.get(iid) or p._settled.get(iid)
        root = alarms.get(inc.root_alarm_id) if inc is not None and inc.root_alarm_id else None
        out.append({"root": inc.root_component if inc else "", "cause": root.probable_cause.value if root else
                    members[0].probable_cause.value, "severity": inc.severity.value if inc else "",
                    "members": sorted(f"{m.component}|{m.probable_cause.value}" for m in members)})
    out.sort(key=lambda d: (d["root"], d["cause"], d["members"]))
    return hashlib.sha256(json.dumps(out, sort_keys=True).encode()).hexdigest()[:16], out


def run(inv, cfg, signals, correlate: bool, shuffle_seed: int | None = None) -> dict:
    p = AlertPipeline(inv, (), cfg, None)
    if not correlate:
        p.correlator = Correlator(inv, table=())
    rng = random.Random(shuffle_seed)
    t0 = time.perf_counter()
    i = 0
    n = len(signals)
    for sec in range(0, 61):
        end = T0 + (sec + 1) * NS
        j = i
        while j < n and signals[j].time_ns < end:
            j += 1
        chunk = signals[i:j]
        if shuffle_seed is not None:
            chunk = list(chunk)
            rng.shuffle(chunk)
        p.feed_signals(chunk)
        i = j
        p.reconcile(end)
    p.reconcile(T0 + 75 * NS)  # let the last groups pass group_wait
    elapsed = time.perf_counter() - t0
    alarms = p.manager.alarms.values()
    digest, incs = incident_digest(p)
    return {"seconds": elapsed, "digest": digest, "incident_list": incs, "alarms": len(alarms), "incidents": p.stats["incidents"],
            "notifications": p.stats["notifications"],
            "root_causes": sum(1 for a in alarms if a.root_cause),
            "symptoms": sum(1 for a in alarms if a.root_alarm_id)}


def steady(site, cfg, polls: int) -> dict:
    """The alerter's everyday work: the simulator's polls through the rules and the pipeline."""
    from dcops.alerts.rules.engine import default_rules
    from dcops.sim import Simulator

    sim = Simulator(site, seed=1, start_ns=T0)
    p = AlertPipeline(sim.inventory, default_rules(), cfg, None)
    p.load(sim.now_ns)
    cpu, cursor = [], 0
    for k in range(polls + 2):
        sim.step()
        batches = sim.batches()
        events, cursor = sim.events_since(cursor)
        c0 = time.process_time()
        for b in batches:
            p.feed_batch(b)
        p.feed_events([e for e in events if e.kind not in ("fault_injected", "fault_cleared")])
        p.reconcile(sim.now_ns)
        if k >= 2:  # the first polls learn every component
            cpu.append(time.process_time() - c0)
    med = sorted(cpu)[len(cpu) // 2]
    n = sim.inventory.n_accel
    return {"steady_cpu_s_per_interval": round(med, 4), "steady_cpu_us_per_accel_interval": round(med / n * 1e6, 2),
            "steady_cores_at_interval": round(med / sim.interval_s, 4), "interval_s": sim.interval_s}


def peak_mb(inv, cfg, signals, correlate: bool) -> float:
    tracemalloc.start()
    run(inv, cfg, signals, correlate)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--site", default=str(Path(__file__).resolve().parents[1] / "examples" / "demo-site.yaml"))
    ap.add_argument("--raw", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--accelerators", type=int, default=None,
                    help="the synthetic site of N accelerators; raw alarms scale to max(N, --raw)")
    ap.add_argument("--polls", type=int, default=6, help="polls timed for the steady state (with --accelerators)")
    args = ap.parse_args()
    site = None
    if args.accelerators:
        from dcops.sim.sitegen import synthetic_site

        site = synthetic_site(args.accelerators)
        inv = build_inventory(site)
        args.raw = max(args.raw, inv.n_accel)
    else:
        inv = build_inventory(load_site(args.site))
    cfg = alerting_from_text(CFG)
    signals = make_storm(inv, args.raw, args.seed)
    corr = run(inv, cfg, signals, True)
    again = run(inv, cfg, signals, True, shuffle_seed=args.seed + 1)
    base = run(inv, cfg, signals, False)
    corr_mem = peak_mb(inv, cfg, signals, True)
    base_mem = peak_mb(inv, cfg, signals, False)
    print(f"site {inv.site}: {inv.n_accel} accelerators; {len(signals)} raw alarms over 60 s of simulated time")
    print(f"correlated: {corr['alarms']} alarms after dedup, {corr['root_causes']} root causes, {corr['symptoms']} symptoms, "
          f"{corr['incidents']} incidents, {corr['notifications']} notifications in {corr['seconds']:.2f} s, "
          f"peak {corr_mem:.1f} MiB")
    for d in corr["incident_list"]:
        if len(d["members"]) > 1:
            print(f"  root {d['root']} ({d['cause']}, {d['severity']}): {len(d['members'])} alarms")
    dark_row = inv.rows[-2].name
    dark_roots = sorted({d["root"] for d in corr["incident_list"]
                         if any(m.split("|")[0] in inv.components and inv.components[m.split("|")[0]].row == dark_row
                                and inv.components[m.split("|")[0]].kind == "server" for m in d["members"])})
    print(f"dark row {dark_row}: root(s) {', '.join(dark_roots)}; digest {corr['digest']}, shuffled run {again['digest']}")
    print(f"baseline (no correlation): {base['incidents']} incidents, {base['notifications']} notifications in "
          f"{base['seconds']:.2f} s, peak {base_mem:.1f} MiB")
    out = {
        "bench": "alarm_storm", "site": inv.site, "raw_alarms": len(signals), "alarms": corr["alarms"],
        "correlate_s": round(corr["seconds"], 3), "raw_alarms_per_s": round(len(signals) / corr["seconds"]),
        "incidents": corr["incidents"], "notifications": corr["notifications"], "root_causes": corr["root_causes"],
        "symptoms": corr["symptoms"], "peak_mem_mib": round(corr_mem, 1),
        "baseline_s": round(base["seconds"], 3), "baseline_incidents": base["incidents"],
        "baseline_notifications": base["notifications"], "baseline_peak_mem_mib": round(base_mem, 1),
        "notification_reduction": round(base["notifications"] / max(corr["notifications"], 1), 1),
        "time_ratio": round(corr["seconds"] / max(base["seconds"], 1e-9), 2),
        "multi_alarm_incidents": sum(1 for d in corr["incident_list"] if len(d["members"]) > 1),
        "dark_row_roots": dark_roots, "digest": corr["digest"], "deterministic": corr["digest"] == again["digest"],
        "accelerators": inv.n_accel, "correlate_us_per_raw_alarm": round(corr["seconds"] / len(signals) * 1e6, 1),
    }
    if site is not None:
        out.update(steady(site, cfg, args.polls))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
