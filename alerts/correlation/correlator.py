"""Topology correlation: which alarm explains which, redundancy-aware severity, inhibition.

Pure functions over alarms and the inventory; the pipeline applies their answers.

- `explain(alarms)` gives every explained alarm a `Link`: its parent (the alarm that
  explains it), the `EXPLAINS` row that applies, and a sentence saying why ("downstream of
  UPS-H2-B on the power path (UPS-H2-B > PDU-H2-R1-B > H2-R1-01), started 3 s after").
  Following parents gives the root cause.
- Causal: a root may not start after its symptom by more than `clock_skew_s` (collectors'
  clocks and event stamping differ by a few seconds, no more), and must still have been active
  when the symptom started.
- Physical: reach follows the power graph for power roots and the cooling graph for cooling
  roots (`Inventory.upstream`); a UPS on battery carries its load, so it explains battery and
  load findings only; host losses are explained by power only in racks left with no live feed
  at the symptom's start, and by cooling only where the rack still had power.
- Siblings: a unit of a redundant group that takes over a lost unit's load (the surviving
  leg of an A/B feed, the other CRACs of an N+1 zone) shows load findings; they belong to
  the lost unit's incident. A second unit lost in the group joins the first.
- Deterministic: among candidate roots, one on the alarm's own unit first, then the lowest
  `rank`, then downstream before sibling, then the earliest start, then the component name;
  never the alarm id or the order of the input.
- Grouping roots synthesised by the pipeline (`grouping.py`, label `correlation_group`)
  explain the causes their rule lists on anything below their component.
- `assess_redundancy` and `inhibited` (in `redundancy.py`, re-exported here) know N+1: one CRAC of a zone with `redundancy: 1`, or a PDU whose
  racks all have another live feed, is "redundancy lost" (major), not an outage (critical).
  Rules mark alarms that mean "this unit is out" with the label `unit_lost: "true"`.
- `inhibited` applies Alertmanager inhibition rules: while a source alarm is active, target
  alarms with equal values of the `equal` labels are not notified (they stay visible).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from dcops.alerts.correlation.explains import EXPLAINS, HOST_LOSS, LOAD_EFFECTS, POWER_KINDS, Explains
from dcops.alerts.correlation.grouping import GROUP_LABEL, GROUPS_BY_NAME
from dcops.alerts.correlation.redundancy import InhibitRule, assess_redundancy, inhibited, is_lost
from dcops.alarm_types import Alarm, ProbableCause as PC
from dcops.topology import GRAPH_OF_KIND, Inventory

__all__ = ["Explains", "EXPLAINS", "Link", "InhibitRule", "Correlator", "assess_redundancy", "inhibited", "is_lost"]

_NS = 1_000_000_000
_RELATION_ORDER = {"same": 0, "downstream": 1, "sibling": 2}
_SIBLING_KINDS = POWER_KINDS | {"cooling", "accel"}
# what a system still settling after its root cleared shows: heat and load, never a unit or host
# lost, a malfunction or silence (those are faults of their own, and page)
RECOVERY_CAUSES = LOAD_EFFECTS | {PC.TEMPERATURE_UNACCEPTABLE, PC.HUMIDITY_UNACCEPTABLE}


@dataclass(frozen=True)
class Link:
    """Why an alarm was attached to its parent."""

    parent: str      # alarm id
    rule: str        # EXPLAINS row name, or "group:<rule>" for a synthesised grouping root
    relation: str    # same, downstream, sibling
    why: str


def _dt(root: Alarm, a: Alarm) -> str:
    d = (a.raised_ns - root.raised_ns) / _NS
    if abs(d) < 0.5:
        return "started at the same time"
    return f"started {d:.0f} s after" if d > 0 else f"started {-d:.0f} s before (within clock skew)"


class Correlator:
    """Finds parents (and so root causes) for alarms. Caches topology answers per component."""

    def __init__(self, inventory: Inventory, lookback_s: float = 900.0, table: Sequence[Explains] = EXPLAINS,
                 clock_skew_s: float = 5.0, settle_s: Mapping[str, float] | None = None) -> None:
        self.inv = inventory
        # per graph of the root's kind (cooling, power; anything else as power): how long after a
        # root clears the symptoms that start are still its doing (the recovery)
        settle = {"cooling": 900.0, "power": 300.0, **(settle_s or {})}
        self.settle_ns = {g: int(v * _NS) for g, v in settle.items()}
        self.lookback_ns = int(lookback_s * _NS)  # kept for callers; causality now uses clock_skew_s
        self.skew_ns = int(clock_skew_s * _NS)
        self.table = tuple(table)
        self._up: dict[str, tuple[str, ...]] = {}
        self._sib: dict[str, tuple[str, ...]] = {}
        self._paths: dict[tuple[str, str], tuple[str, ...]] = {}
        self._feeds: dict[str, tuple[tuple[str, ...], ...]] = {}
        self._why_cache: dict[tuple, str] = {}
        self._root_kinds = frozenset(k for e in self.table for k in e.root_kinds)
        self._memo_sig: tuple | None = None          # the roots the memo below was computed against
        self._memo: dict[str, tuple[tuple, Link | None]] = {}

    # ----- topology caches ---------------------------------------------------------------------
    def _upstream(self, comp: str) -> tuple[str, ...]:
        up = self._up.get(comp)
        if up is None:
            up = (comp,) + tuple(sorted(self.inv.upstream(comp))) if comp in self.inv.components else ()
            self._up[comp] = up
        return up

    def _path(self, up: str, down: str) -> tuple[str, ...]:
        p = self._paths.get((up, down))
        if p is None:
            p = self._paths[(up, down)] = self.inv.path_between(up, down)
        return p

    def _siblings(self, comp: str) -> tuple[str, ...]:
        """Units that back each other up: CRACs of one zone, the PDUs (and their UPSes and rack
        PDUs) feeding the same racks, the rack PDUs of one rack."""
        sib = self._sib.get(comp)
        if sib is None:
            inv = self.inv
            c = inv.components.get(comp)
            out: set[str] = set()
            if c is not None and c.kind == "accel" and c.device:
                # the accelerators of one server share its work: one lost, the others take its load
                out.update(x for x in inv.children(c.device) if inv.components[x].kind == "accel")
            elif c is not None and c.kind == "cooling":
                for z in inv.children(comp):
                    if inv.components[z].kind == "zone":
                        out.update(inv.components[z].attrs["units"])
            elif c is not None and c.kind in POWER_KINDS:
                racks = sorted(r for r in inv.downstream(comp) if inv.components[r].kind == "rack")
                mine = set(self._upstream(comp)) | inv.downstream(comp)
                for r in racks:
                    for feed in self._rack_feeds(r):
                        if not set(feed) & mine:
                            out.update(feed)
            out.discard(comp)
            sib = self._sib[comp] = tuple(sorted(out))
        return sib

    def _rack_feeds(self, rack: str) -> tuple[tuple[str, ...], ...]:
        """Per feed of a rack: the power components it depends on (UPS, PDU, rack PDU)."""
        f = self._feeds.get(rack)
        if f is None:
            inv = self.inv
            feeds = inv.components[rack].attrs["feeds"]
            rps = {inv.components[x].attrs.get("feed"): x for x in inv.children(rack) if inv.components[x].kind == "rack_pdu"}
            out = []
            for leg in sorted(feeds):
                pdu = feeds[leg]
                chain = [pdu, inv.components[pdu].attrs.get("ups", "")]
                if leg in rps:
                    chain.append(rps[leg])
                out.append(tuple(c for c in chain if c))
            f = self._feeds[rack] = tuple(out)
        return f

    # ----- explanation -------------------------------------------------------------------------
    def parents(self, alarms: Iterable[Alarm]) -> dict[str, str]:
        """alarm id -> id of the alarm that explains it (its parent), for every explained alarm."""
        return {k: v.parent for k, v in self.explain(alarms).items()}

    def explain(self, alarms: Iterable[Alarm]) -> dict[str, Link]:
        """alarm id -> Link to its parent, for every explained alarm."""
        alarms = list(alarms)
        comps = self.inv.components
        roots_at: dict[str, list[tuple[Alarm, Explains | None]]] = defaultdict(list)
        lost_at: dict[str, list[Alarm]] = defaultdict(list)
        for a in alarms:
            c = comps.get(a.component)
            if c is None:
                continue
            if a.labels.get(GROUP_LABEL) in GROUPS_BY_NAME:
                roots_at[a.component].append((a, None))
            if c.kind not in self._root_kinds:
                continue
            lost = is_lost(a)
            for e in self.table:
                if e.matches_root(c.kind, a.probable_cause, lost):
                    roots_at[a.component].append((a, e))
            if lost and c.kind in POWER_KINDS:
                lost_at[a.component].append(a)
        if not roots_at:
            return {}
        for v in roots_at.values():
            v.sort(key=lambda x: (x[0].raised_ns, x[0].probable_cause.value, x[0].id))
        # an alarm's answer depends only on itself and the candidate roots: while those stay the
        # same (a quiet cycle), reuse the last answer
        sig = tuple(sorted((r.id, r.raised_ns, r.cleared_ns, e.name if e else "") for v in roots_at.values() for r, e in v))
        if sig != self._memo_sig:
            self._memo_sig, self._memo = sig, {}
        memo = self._memo
        out: dict[str, Link] = {}
        seen = set()
        for a in alarms:
            if a.component not in comps:
                continue
            seen.add(a.id)
            key = (a.raised_ns, a.cleared_ns, a.probable_cause, is_lost(a))
            hit = memo.get(a.id)
            if hit is not None and hit[0] == key:
                best = hit[1]
            else:
                best = self._best(a, roots_at, lost_at)
                memo[a.id] = (key, best)
            if best is not None:
                out[a.id] = best
        if len(memo) > 2 * len(seen) + 1000:
            self._memo = {k: v for k, v in memo.items() if k in seen}
        if len(self._why_cache) > 4 * len(seen) + 10000:
            self._why_cache.clear()
        return out

    def _active_at(self, r: Alarm, t: int) -> bool:
        return r.raised_ns <= t + self.skew_ns and (r.cleared_ns is None or r.cleared_ns >= t)

    def _explains_at(self, r: Alarm, a: Alarm) -> bool:
        """Root `r` can explain symptom `a`: active when `a` started, or cleared so recently that
        `a` is its recovery (the room still warm, hosts booting). A unit lost, or an alarm on a
        unit of the root's own kind, is never put down to recovery: a new fault right after an
        old one clears is its own."""
        if self._active_at(r, a.raised_ns):
            return True
        c = self.inv.components.get(r.component)
        if a.probable_cause not in RECOVERY_CAUSES or is_lost(a) or r.cleared_ns is None or r.raised_ns > a.raised_ns or (
                c is not None and a.component in self.inv.components and self.inv.components[a.component].kind == c.kind):
            return False
        graph = GRAPH_OF_KIND.get(c.kind, "power") if c is not None else "power"
        return a.raised_ns <= r.cleared_ns + self.settle_ns.get(graph, self.settle_ns["power"])

    def _dark(self, comp: str, t: int, lost_at: Mapping[str, Sequence[Alarm]], group_dark: bool) -> bool:
        """True when the rack of `comp` had no live feed at time t."""
        c = self.inv.components[comp]
        if group_dark or not c.rack or c.rack not in self.inv.components:
            return group_dark
        feeds = self._rack_feeds(c.rack)
        return bool(feeds) and all(any(self._active_at(x, t) for p in feed for x in lost_at.get(p, ())) for feed in feeds)

    def _best(self, a: Alarm, roots_at, lost_at) -> Link | None:
        comps = self.inv.components
        best_key: tuple | None = None
        best: tuple[Alarm, Explains | None, str, str] | None = None
        dark: bool | None = None
        up = self._upstream(a.component)
        c = comps[a.component]
        # a probe mounted in a rack hangs off no feed or unit (no topology parent), yet it shares
        # the rack's network: a rack group root ("no data from the rack") reaches it
        housing = (c.rack,) if c.rack and c.rack in comps and c.rack not in up else ()
        for comp in up + housing:
            for r, e in roots_at.get(comp, ()):
                if comp in housing and e is not None:
                    continue
                same = comp == a.component
                if e is None and same and r.id != a.id:
                    # the grouping parent's own alarm about what its members show (a rack's
                    # telemetry gone after its servers' went): one observation, whichever came first
                    if (a.probable_cause not in GROUPS_BY_NAME[r.labels[GROUP_LABEL]].explains or a.labels.get(GROUP_LABEL)
                            or self._is_root(a, roots_at) or not self._overlap(r, a)):
                        continue
                    key = (1, 2, 0, r.raised_ns, comp, r.probable_cause.value, r.id)
                    if best_key is None or key < best_key:
                        best_key, best = key, (r, e, "same", comp)
                    continue
                if r.id == a.id or not self._active_at(r, a.raised_ns) and (same or not self._explains_at(r, a)):
                    continue
                if e is None:  # synthesised grouping root
                    g = GROUPS_BY_NAME[r.labels[GROUP_LABEL]]
                    if a.probable_cause not in g.explains:
                        continue
                    key = (1, 2, 1, r.raised_ns, comp, r.probable_cause.value, r.id)
                    rel = "downstream"
                else:
                    if same:
                        if a.probable_cause not in e.same_component or (
                                is_lost(a) and e.root_lost and (r.raised_ns, r.probable_cause.value) >= (a.raised_ns, a.probable_cause.value)):
                            continue
                        if self._explains_same(a, r, roots_at) and (
                                (r.raised_ns, r.probable_cause.value, r.id) > (a.raised_ns, a.probable_cause.value, a.id)):
                            # two reports of one fault on one unit (an accelerator too hot and
                            # throttling) would explain each other, a cycle that reaches no root
                            # upstream: the first is the parent, and it finds the cause upstream
                            continue
                        rel = "same"
                    elif a.probable_cause not in e.symptom_causes and a.probable_cause in e.drops_load:
                        if not self._dropped(r, e, a, roots_at, lost_at):
                            continue
                        rel = "downstream"
                    else:
                        if a.probable_cause not in e.symptom_causes:
                            continue
                        if a.probable_cause in e.only_unpowered or a.probable_cause in e.only_powered:
                            if dark is None:
                                dark = self._dark(a.component, a.raised_ns, lost_at, self._group_dark(a, roots_at))
                            if a.probable_cause in e.only_unpowered and not dark:
                                continue
                            if a.probable_cause in e.only_powered and dark:
                                continue
                        rel = "downstream"
                    key = (0 if same else 1, e.rank, _RELATION_ORDER[rel], r.raised_ns, comp, r.probable_cause.value, r.id)
                if best_key is None or key < best_key:
                    best_key, best = key, (r, e, rel, comp)
        if comps[a.component].kind in _SIBLING_KINDS:
            for sib in self._siblings(a.component):
                for r, e in roots_at.get(sib, ()):
                    if e is None or not self._active_at(r, a.raised_ns):
                        continue
                    if a.probable_cause in e.sibling_load and not is_lost(a):
                        # the sibling took over the root's load: any time after the root started
                        if r.raised_ns > a.raised_ns + self.skew_ns:
                            continue
                    elif a.probable_cause not in e.sibling_causes:
                        continue
                    elif not is_lost(r):  # a common cause: both units hit within the clock skew
                        if abs(a.raised_ns - r.raised_ns) > self.skew_ns or \
                                (r.raised_ns, r.component) >= (a.raised_ns, a.component):
                            continue
                    elif is_lost(a) and (r.raised_ns, r.component) >= (a.raised_ns, a.component):
                        continue  # the first unit lost is the root; no cycles between siblings
                    elif not is_lost(a) and r.raised_ns > a.raised_ns:
                        continue  # a load finding before the loss is not caused by it
                    key = (1, e.rank, 2, r.raised_ns, sib, r.probable_cause.value, r.id)
                    if best_key is None or key < best_key:
                        best_key, best = key, (r, e, "sibling", sib)
        if best is None:
            return None
        r, e, rel, comp = best
        return Link(r.id, e.name if e is not None else f"group:{r.labels[GROUP_LABEL]}", rel, self._why(r, e, rel, a))

    @staticmethod
    def _explains_same(a: Alarm, r: Alarm, roots_at) -> bool:
        """`a` is itself a root whose row would explain `r` on their one component."""
        return any(x.id == a.id and e is not None and r.probable_cause in e.same_component
                   for x, e in roots_at.get(a.component, ()))

    @staticmethod
    def _is_root(a: Alarm, roots_at) -> bool:
        """`a` is itself a root of some row of the table (it explains others; never a group's child)."""
        return any(x.id == a.id and e is not None for x, e in roots_at.get(a.component, ()))

    def _overlap(self, r: Alarm, a: Alarm) -> bool:
        """`r` and `a` were active together at some moment (within the clock skew)."""
        return ((a.cleared_ns is None or r.raised_ns <= a.cleared_ns + self.skew_ns)
                and (r.cleared_ns is None or a.raised_ns <= r.cleared_ns + self.skew_ns))

    def _dropped(self, r: Alarm, e: Explains, a: Alarm, roots_at, lost_at) -> bool:
        """A degraded unit `r` dropped the load that `a` lost: it started first, and for a host
        loss every feed of the rack ran through a unit in that state, or a lost one."""
        c = self.inv.components[a.component]
        if r.raised_ns > a.raised_ns or c.kind not in ("server", "accel", "rack") or not c.rack:
            return False
        if a.probable_cause not in e.only_unpowered and a.probable_cause not in HOST_LOSS:
            return True
        t = a.raised_ns
        for feed in self._rack_feeds(c.rack):
            ok = False
            for p in feed:
                if any(self._active_at(x, t) for x in lost_at.get(p, ())) or any(
                        f is not None and f.name == e.name and x.raised_ns <= t and self._active_at(x, t)
                        for x, f in roots_at.get(p, ())):
                    ok = True
                    break
            if not ok:
                return False
        return True

    def _group_dark(self, a: Alarm, roots_at) -> bool:
        """A synthesised power root on the rack (or row) of `a` says the rack went dark."""
        c = self.inv.components[a.component]
        for place in (c.rack, c.row):
            for r, e in roots_at.get(place, ()):
                if e is None and r.labels.get(GROUP_LABEL) in ("rack-power", "row-power") and self._active_at(r, a.raised_ns):
                    return True
        return False

    def _why(self, r: Alarm, e: Explains | None, rel: str, a: Alarm) -> str:
        key = (r.id, r.raised_ns, a.id, a.raised_ns, rel, e.name if e else "")
        text = self._why_cache.get(key)
        if text is None:
            text = self._why_cache[key] = self._why_text(r, e, rel, a)
        return text

    def _why_text(self, r: Alarm, e: Explains | None, rel: str, a: Alarm) -> str:
        dt = _dt(r, a)
        if rel == "same" and e is None:
            d = (a.raised_ns - r.raised_ns) / _NS
            when = dt if d > -0.5 else f"raised {-d:.0f} s before the group formed"
            return (f"{r.component}'s own report of what its synthesised root found ({r.labels[GROUP_LABEL]}: "
                    f"{r.specific_problem}), {when}")
        if rel == "same":
            return f"on the same unit {r.component}: {a.probable_cause.value} after {r.probable_cause.value}, {dt}"
        if rel == "sibling":
            if e is not None and a.probable_cause in e.sibling_load and not is_lost(a):
                return f"carries the load of {r.component} ({r.specific_problem}), {dt}"
            if not is_lost(r):
                return f"same cause as {r.component} ({r.specific_problem}): its sibling, {dt}"
            what = "second unit lost in the same redundant group as" if is_lost(a) else "carries the load of"
            return f"{what} {r.component} (lost: {r.specific_problem}), {dt}"
        path = self._path(r.component, a.component)
        graph = GRAPH_OF_KIND.get(self.inv.components[r.component].kind, "containment") if e is None else e.graph
        chain = f" ({' > '.join(path)})" if len(path) > 2 else ""
        if e is None:
            return (f"below {r.component}{chain}, grouped under a synthesised root ({r.labels[GROUP_LABEL]}: "
                    f"{r.specific_problem}), {dt}")
        return f"downstream of {r.component} on the {graph} path{chain}, {dt}"

    @staticmethod
    def roots(parents: Mapping[str, str]) -> dict[str, str]:
        """Follow parents to the top: alarm id -> root alarm id (cycles are cut)."""
        out: dict[str, str] = {}
        for a in sorted(parents):
            seen = {a}
            cur = a
            while cur in parents and parents[cur] not in seen:
                cur = parents[cur]
                seen.add(cur)
            if cur != a:
                out[a] = cur
        return out
