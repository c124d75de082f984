"""Inventory and topology built from a validated site config.

The inventory flattens the site into arrays (one entry per accelerator, server, rack) for the
hot paths, and keeps a graph of what depends on what:

- containment: hall > row > rack > server > accelerator;
- power: UPS > PDU > rack (feed A/B) > server PSU;
- cooling: CRAC/CDU > zone > row > rack.

`downstream(name)` answers "what does this component's failure reach", the question both
the simulator (who loses power or cooling) and alarm correlation (which alarms does this root
cause explain) ask. Accelerator ids are `<server>:<index>`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from dcops.site import SiteConfig

__all__ = ["Component", "Inventory", "build_inventory", "accel_id", "GRAPH_OF_KIND"]

# which dependency graph a component kind's failure travels along (what "reach" means for it)
GRAPH_OF_KIND = {"ups": "power", "pdu": "power", "rack_pdu": "power", "cooling": "cooling", "zone": "cooling",
                 "hall": "containment", "row": "containment", "rack": "containment", "server": "containment",
                 "accel": "containment", "env": "containment"}


def accel_id(server: str, index: int) -> str:
    return f"{server}:{index}"


@dataclass(frozen=True)
class Component:
    """One named thing in the site with its place in the tree."""

    name: str
    kind: str  # hall, row, rack, server, accel, ups, pdu, rack_pdu, cooling, zone, env
    hall: str = ""
    row: str = ""
    rack: str = ""
    device: str = ""
    attrs: dict = field(default_factory=dict, compare=False, hash=False)

    def tags(self, site: str) -> dict[str, str]:
        t = {"site": site, "hall": self.hall}
        if self.row:
            t["row"] = self.row
        if self.rack:
            t["rack"] = self.rack
        if self.kind in ("server", "accel"):
            t["device"] = self.device
        elif self.kind not in ("hall", "row", "rack", "zone"):
            t["device"] = self.name
        if self.kind == "accel":
            t["accel"] = self.name.rsplit(":", 1)[1]
        return t

    def path(self, site: str) -> str:
        parts = [site, self.hall, self.row, self.rack]
        if self.kind in ("server", "accel"):
            parts.append(self.device)
        if self.kind == "accel":
            parts.append(self.name.rsplit(":", 1)[1])
        elif self.kind not in ("hall", "row", "rack", "server"):
            parts.append(self.name)
        return "/".join(p for p in parts if p)


class Inventory:
    """Everything in a site, indexed for lookups and with arrays for vectorised code."""

    def __init__(self, cfg: SiteConfig) -> None:
        self.config = cfg
        self.site = cfg.site
        self.components: dict[str, Component] = {}
        self._children: dict[str, set[str]] = defaultdict(set)  # dependency edges, upstream -> downstream
        self._parents: dict[str, set[str]] = defaultdict(set)
        self.servers: list[Component] = []
        self.racks: list[Component] = []
        self.rows: list[Component] = []
        accel_rows: list[tuple] = []

        def add(c: Component) -> Component:
            self.components[c.name] = c
            return c

        def edge(up: str, down: str) -> None:
            self._children[up].add(down)
            self._parents[down].add(up)

        for hall in cfg.halls:
            add(Component(hall.name, "hall", hall.name))
            for u in hall.upses:
                add(Component(u.name, "ups", hall.name, attrs={"capacity_w": u.capacity_kw * 1e3, "runtime_s": u.battery_runtime_s, "model": u.model}))
            for p in hall.pdus:
                add(Component(p.name, "pdu", hall.name, attrs={"capacity_w": p.capacity_kw * 1e3, "ups": p.ups, "model": p.model}))
                edge(p.ups, p.name)
            for c in hall.cooling_units:
                add(Component(c.name, "cooling", hall.name, attrs={"capacity_w": c.capacity_kw * 1e3, "unit_kind": c.kind, "setpoint": c.setpoint_degc, "model": c.model}))
            zone_of_row = {}
            for z in hall.cooling_zones:
                add(Component(z.name, "zone", hall.name, attrs={"units": z.units, "rows": z.rows, "redundancy": z.redundancy}))
                for u in z.units:
                    edge(u, z.name)
                for r in z.rows:
                    zone_of_row[r] = z.name
            for s in hall.sensors:
                add(Component(s.name, "env", hall.name, attrs={"position": s.position}))
            for row in hall.rows:
                rc = add(Component(row.name, "row", hall.name, row.name, attrs={"zone": zone_of_row.get(row.name, "")}))
                self.rows.append(rc)
                edge(hall.name, row.name)
                if row.name in zone_of_row:
                    edge(zone_of_row[row.name], row.name)
                for pos, rack in enumerate(row.racks):
                    k = add(Component(rack.name, "rack", hall.name, row.name, rack.name,
                                      attrs={"feeds": dict(rack.feeds), "zone": zone_of_row.get(row.name, ""), "position": pos}))
                    self.racks.append(k)
                    edge(row.name, rack.name)
                    for pdu in rack.feeds.values():
                        edge(pdu, rack.name)
                    for rp in rack.rack_pdus:
                        add(Component(rp.name, "rack_pdu", hall.name, row.name, rack.name, attrs={"feed": rp.feed, "model": rp.model}))
                        edge(rack.feeds[rp.feed], rp.name)
                        edge(rp.name, rack.name)
                    for sen in rack.sensors:
                        add(Component(sen.name, "env", hall.name, row.name, rack.name, attrs={"position": sen.position}))
                    for srv in cfg.servers_of(rack):
                        acc = srv.accelerators
                        sc = add(Component(srv.name, "server", hall.name, row.name, rack.name, srv.name,
                                           attrs={"kind": srv.kind, "psus": tuple(srv.psus), "idle_w": srv.idle_w,
                                                  "feeds": {f: rack.feeds[f] for f in srv.psus if f in rack.feeds}}))
                        self.servers.append(sc)
                        edge(rack.name, srv.name)
                        if acc is None:
                            continue
                        for i in range(acc.count):
                            aid = accel_id(srv.name, i)
                            add(Component(aid, "accel", hall.name, row.name, rack.name, srv.name,
                                          attrs={"vendor": acc.vendor, "model": acc.model, "tdp_w": acc.tdp_w}))
                            edge(srv.name, aid)
                            accel_rows.append((aid, hall.name, row.name, rack.name, srv.name, str(i), acc.vendor,
                                               acc.model, acc.tdp_w, acc.memory_bytes, i // acc.dies_per_card, acc.dies_per_card))
        cols = list(zip(*accel_rows)) if accel_rows else [()] * 12
        obj = lambda c: np.asarray(c, dtype=object)  # noqa: E731
        self.accel_ids = obj(cols[0])
        self.accel_tags = {
            "site": np.full(len(accel_rows), self.site, dtype=object),
            "hall": obj(cols[1]), "row": obj(cols[2]), "rack": obj(cols[3]), "device": obj(cols[4]),
            "accel": obj(cols[5]), "vendor": obj(cols[6]), "model": obj(cols[7]),
        }
        self.accel_tdp_w = np.asarray(cols[8], dtype=np.float64)
        self.accel_memory_bytes = np.asarray(cols[9], dtype=np.float64)
        self.accel_card = np.asarray(cols[10], dtype=np.int64)
        self.accel_dies_per_card = np.asarray(cols[11], dtype=np.int64)
        self.accel_index = {a: i for i, a in enumerate(self.accel_ids)}

    # ----- lookups -------------------------------------------------------------------------
    def __contains__(self, name: str) -> bool:
        return name in self.components

    def get(self, name: str) -> Component:
        try:
            return self.components[name]
        except KeyError:
            raise KeyError(f"no component named {name!r} in site {self.site!r}") from None

    def of_kind(self, kind: str) -> list[Component]:
        return list(self._by_kind.get(kind, ()))

    @cached_property
    def _by_kind(self) -> dict[str, tuple[Component, ...]]:
        out: dict[str, list[Component]] = defaultdict(list)
        for c in self.components.values():
            out[c.kind].append(c)
        return {k: tuple(v) for k, v in out.items()}

    def path(self, name: str) -> str:
        return self.get(name).path(self.site)

    def resolve(self, ref: str) -> Component:
        """Find a component by name or by topology path (`site/hall/row/rack/...`)."""
        if ref in self.components:
            return self.components[ref]
        last = ref.rstrip("/").rsplit("/", 1)[-1]
        if last in self.components and self.components[last].path(self.site) == ref:
            return self.components[last]
        parts = ref.strip("/").split("/")
        if len(parts) >= 2 and parts[-1].isdigit():
            aid = accel_id(parts[-2], int(parts[-1]))
            if aid in self.components:
                return self.components[aid]
        raise KeyError(f"no component {ref!r} in site {self.site!r}")

    # ----- dependency graph ----------------------------------------------------------------
    def children(self, name: str) -> set[str]:
        return set(self._children.get(name, ()))

    def parents(self, name: str) -> set[str]:
        return set(self._parents.get(name, ()))

    def downstream(self, name: str) -> set[str]:
        """Every component that depends, directly or not, on `name` (power, cooling, containment)."""
        self.get(name)
        out: set[str] = set()
        todo = [name]
        while todo:
            for c in self._children.get(todo.pop(), ()):
                if c not in out:
                    out.add(c)
                    todo.append(c)
        return out

    def upstream(self, name: str) -> set[str]:
        self.get(name)
        out: set[str] = set()
        todo = [name]
        while todo:
            for c in self._parents.get(todo.pop(), ()):
                if c not in out:
                    out.add(c)
                    todo.append(c)
        return out

    def path_between(self, up: str, down: str) -> tuple[str, ...]:
        """The shortest dependency chain from `up` to `down` (both included), e.g. UPS > PDU >
        rack > server > accelerator; () when `down` is not reached from `up`. Ties between
        equally short chains go to the alphabetically first, so the answer never depends on
        set order."""
        if up == down:
            return (up,)
        nxt_of: dict[str, str] = {down: ""}  # searched upwards from `down`: a small tree
        frontier = [down]
        while frontier and up not in nxt_of:
            new = []
            for n in frontier:
                for p in sorted(self._parents.get(n, ())):
                    if p not in nxt_of:
                        nxt_of[p] = n
                        new.append(p)
            frontier = new
        if up not in nxt_of:
            return ()
        out = [up]
        while out[-1] != down:
            out.append(nxt_of[out[-1]])
        return tuple(out)

    def nearest_upstream(self, name: str, kind: str) -> str | None:
        """The closest component of `kind` above `name` (fewest edges; alphabetical among equals)."""
        seen = {name}
        frontier = [name]
        while frontier:
            hits = sorted(p for n in frontier for p in self._parents.get(n, ()) if p not in seen
                          and self.components[p].kind == kind)
            if hits:
                return hits[0]
            nxt = sorted({p for n in frontier for p in self._parents.get(n, ())} - seen)
            seen.update(nxt)
            frontier = nxt
        return None

    @cached_property
    def racks_of_pdu(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = defaultdict(list)
        for r in self.racks:
            for pdu in r.attrs["feeds"].values():
                out[pdu].append(r.name)
        return dict(out)

    @cached_property
    def rows_of_zone(self) -> dict[str, tuple[str, ...]]:
        return {c.name: tuple(c.attrs["rows"]) for c in self.of_kind("zone")}

    def accel_mask(self, names) -> np.ndarray:
        """Boolean mask over accelerators that are (or are inside) any of the named components."""
        names = set(names)
        mask = np.zeros(len(self.accel_ids), dtype=bool)
        for key in ("hall", "row", "rack", "device"):
            mask |= np.isin(self.accel_tags[key], list(names))
        mask |= np.isin(self.accel_ids, list(names))
        return mask

    @property
    def n_accel(self) -> int:
        return len(self.accel_ids)

    def for_racks(self, racks) -> "Inventory":
        """The inventory of a part of the site: the named racks (with their servers, accelerators,
        rack PDUs and sensors) and every hall's shared equipment (UPSes, PDUs, cooling, hall
        sensors), so a consumer-group member that owns some racks' partitions scores exactly
        those. Rows left without racks are dropped; this inventory itself when every rack is named."""
        keep = set(racks)
        if keep >= {r.name for r in self.racks}:
            return self
        unknown = keep - {r.name for r in self.racks}
        if unknown:
            raise KeyError(f"no racks {sorted(unknown)} in site {self.site!r}")
        halls = []
        for hall in self.config.halls:
            rows = tuple(row.model_copy(update={"racks": tuple(k for k in row.racks if k.name in keep)})
                         for row in hall.rows if any(k.name in keep for k in row.racks))
            halls.append(hall.model_copy(update={"rows": rows}))
        return Inventory(self.config.model_copy(update={"halls": tuple(halls)}))


def build_inventory(cfg: SiteConfig) -> Inventory:
    return Inventory(cfg)
