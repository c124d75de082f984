"""Score an outage report against the faults that were injected (the ground truth).

- Causes: faults of one type that start within `skew_s` of each other and reach common
  components (both PDUs of a row, two CRACs of a zone) are one cause. So is the loss of a
  second unit of a redundant group while an earlier one is still out (a PDU breaker trips, and
  later the other leg of its racks' feed is lost; a CRAC stops, and later another unit of its
  zone): the second loss is what leaves the group short, and the NOC needs the one incident on
  the group raised to critical, not a second incident beside the first. Every other fault is
  its own, independent cause.
- An incident belongs to a cause when its root is one of the cause's targets (right root), or
  lies within the cause's reach (the faults' affected components and what hangs below them),
  or above a target (a zone for a CRAC): wrong root. Otherwise it is spurious.
- Redundancy severity, for causes that take out units of a redundant group (PDU breakers,
  cooling units): major when the group still carries the load (one leg of an A/B feed, one
  unit of an N+1 zone), critical when it does not (a rack with no live feed, a zone with more
  units down than its redundancy), read from the site's topology, never from the scenario.

`score(report, inventory)` returns per-scenario verdicts and the totals the benchmark prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dcops.topology import Inventory

__all__ = ["Cause", "causes_of", "expected_severity", "score", "REDUNDANT_FAULTS"]

# faults that take one unit of a redundant group out: power (a PDU breaker, a UPS dropping its
# load) and cooling (a CRAC/CDU stopping, a CDU pump)
POWER_UNIT_LOST = frozenset({"pdu_breaker_trip", "ups_output_lost"})
COOLING_UNIT_LOST = frozenset({"crac_failure", "cdu_pump_failure"})
REDUNDANT_FAULTS = POWER_UNIT_LOST | COOLING_UNIT_LOST


@dataclass
class Cause:
    fault: str
    targets: tuple[str, ...]
    at_s: float
    reach: frozenset[str]
    incidents: list[dict] = field(default_factory=list)
    until_s: float | None = 0.0  # when its last fault ends (None: never); 0 = unknown (older reports)

    def out_at(self, t: float) -> bool:
        """Whether a unit this cause took out is still out at `t`."""
        return self.at_s <= t and (self.until_s is None or t < self.until_s)


def _unit_class(fault: str) -> frozenset[str] | None:
    return next((c for c in (POWER_UNIT_LOST, COOLING_UNIT_LOST) if fault in c), None)


def causes_of(faults: list[dict], skew_s: float = 10.0) -> list[Cause]:
    out: list[Cause] = []
    for f in sorted(faults, key=lambda f: (f["at_s"], f["target"])):
        reach = frozenset(f["affected"]) | {f["target"]}
        until = f.get("until_s", 0.0)
        for c in out:
            together = c.fault == f["fault"] and abs(c.at_s - f["at_s"]) <= skew_s
            same_group = _unit_class(f["fault"]) is not None and _unit_class(c.fault) == _unit_class(f["fault"]) \
                and c.out_at(f["at_s"])
            if (together or same_group) and (c.reach & reach) - set(c.targets):
                c.targets += (f["target"],)
                c.reach |= reach
                c.until_s = None if until is None or c.until_s is None else max(c.until_s, until)
                break
        else:
            out.append(Cause(f["fault"], (f["target"],), f["at_s"], reach, until_s=until))
    return out


def expected_severity(cause: Cause, inv: Inventory) -> str | None:
    """major / critical for causes that take units of a redundant group out; None otherwise."""
    if cause.fault in POWER_UNIT_LOST:
        lost = set()
        for t in cause.targets:
            c = inv.components.get(t)
            if c is None:
                continue
            lost |= {t} if c.kind == "pdu" else {p for p in inv.children(t) if inv.components[p].kind == "pdu"}
        racks = {r for p in lost for r in inv.racks_of_pdu.get(p, ())}
        dark = [r for r in racks if set(inv.components[r].attrs["feeds"].values()) <= lost]
        return "critical" if dark else "major"
    if cause.fault in COOLING_UNIT_LOST:
        worst = None
        for unit in cause.targets:
            for z in inv.children(unit):
                zc = inv.components[z]
                if zc.kind != "zone":
                    continue
                down = len(set(zc.attrs["units"]) & set(cause.targets))
                sev = "critical" if down > int(zc.attrs.get("redundancy", 0)) else "major"
                worst = sev if worst != "critical" else worst
        return worst
    return None


def _belongs(root: str, cause: Cause, inv: Inventory) -> bool:
    if root in cause.reach:
        return True
    if root in inv.components and set(inv.upstream(root)) & cause.reach:
        return True
    return any(t in inv.components and root in inv.upstream(t) for t in cause.targets)


def score_scenario(sc: dict, inv: Inventory) -> dict:
    causes = causes_of(sc.get("faults", []))
    spurious = []
    right = 0
    for inc in sc["incidents"]:
        root = inc["root_component"]
        owner = next((c for c in causes if root in c.targets), None)
        if owner is not None:
            right += 1
        else:
            owner = next((c for c in causes if _belongs(root, c, inv)), None)
        if owner is None:
            spurious.append(inc)
        else:
            owner.incidents.append(inc)
    verdicts = []
    for c in causes:
        exp = expected_severity(c, inv)
        got = [i["severity"] for i in c.incidents]
        verdicts.append({"fault": c.fault, "targets": list(c.targets), "incidents": len(c.incidents),
                         "roots": sorted({i["root_component"] for i in c.incidents}),
                         "expected_severity": exp, "severities": got,
                         "severity_right": None if exp is None else (len(got) == 1 and got[0] == exp)})
    return {"name": sc["name"], "raw_alarms": sc["raw_alarms"], "incidents": len(sc["incidents"]),
            "right_root": right, "spurious": len(spurious), "pages": sc["pages"], "duration_s": sc["duration_s"],
            "causes": verdicts}


def _gradual(report: dict) -> dict:
    """Slow faults (drifts) flagged by analytics before any threshold rule fired on them."""
    from dcops.sim.faults import FAULT_TYPES

    slow = [f for sc in report["scenarios"] for f in sc.get("faults", [])
            if f["fault"] in FAULT_TYPES and not FAULT_TYPES[f["fault"]].abrupt]
    early = [f for f in slow if f.get("first_analytics_s") is not None
             and (f.get("first_rule_s") is None or f["first_analytics_s"] < f["first_rule_s"])]
    return {"gradual_faults": len(slow), "gradual_flagged_before_threshold": len(early)}


def score(report: dict, inv: Inventory) -> dict:
    per = [score_scenario(sc, inv) for sc in report["scenarios"]]
    faulty = [p for p in per if p["causes"]]
    quiet = [p for p in per if not p["causes"]]
    raw = sum(p["raw_alarms"] for p in faulty)
    incs = sum(p["incidents"] for p in faulty)
    causes = [c for p in faulty for c in p["causes"]]
    red = [c for c in causes if c["severity_right"] is not None]
    quiet_s = sum(p["duration_s"] for p in quiet)
    return {
        "scenarios": len(per),
        "fault_scenarios": len(faulty),
        "raw_alarms": raw,
        "incidents": incs,
        "raw_per_incident": round(raw / incs, 1) if incs else None,
        "right_root_pct": round(100.0 * sum(p["right_root"] for p in faulty) / incs, 1) if incs else None,
        "independent_faults": len(causes),
        "faults_with_one_incident": sum(1 for c in causes if c["incidents"] == 1),
        "faults_missed": sum(1 for c in causes if c["incidents"] == 0),
        "incidents_per_fault": round(sum(c["incidents"] for c in causes) / len(causes), 2) if causes else None,
        "spurious_incidents": sum(p["spurious"] for p in faulty),
        "redundancy_cases": len(red),
        "redundancy_severity_right": sum(1 for c in red if c["severity_right"]),
        **_gradual(report),
        "quiet_s": quiet_s,
        "quiet_pages": sum(p["pages"] for p in quiet),
        "pages_per_quiet_day": round(sum(p["pages"] for p in quiet) * 86400.0 / quiet_s, 2) if quiet_s else None,
        "per_scenario": per,
    }
