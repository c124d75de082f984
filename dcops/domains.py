"""Power domains: the parts of a site that no alarm's root can cross, for partitioning the alerter.

A domain is a connected component of the site's dependency graph (power: UPS > PDU > rack feed
> rack PDU; cooling: unit > zone > row; containment: hall > row > rack > server > accelerator),
with every component joined to its hall. Correlation looks for an alarm's root upstream of it
along exactly these edges, and groups siblings under a common parent, so an alarm and every
possible root of it are always in one domain: a UPS that feeds PDUs in two halls makes those
halls one domain. Each domain is named by its halls (`H1+H2`).

Alerter workers each own some domains: events, findings and alarms are keyed by domain
(`DomainShare.domain`), so with Kafka `partition_for(domain)` says which worker correlates them, and
`DomainShare.owns` is the filter a worker applies to the signals it turns into alarms.
Components outside the inventory (site-level signals) belong to the first domain.
"""

from __future__ import annotations

from dcops.topology import Inventory

__all__ = ["DomainShare", "domain_share", "power_domains"]


def power_domains(inv: Inventory) -> dict[str, str]:
    """{component: domain} for every component of the inventory."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    for name, c in inv.components.items():
        find(name)
        if c.hall:
            union(name, c.hall)
        for child in inv.children(name):
            union(name, child)
    halls: dict[str, set[str]] = {}
    for name, c in inv.components.items():
        if c.kind == "hall":
            halls.setdefault(find(name), set()).add(name)
    label = {root: "+".join(sorted(hs)) for root, hs in halls.items()}
    return {name: label.get(find(name), find(name)) for name in inv.components}


class DomainShare:
    """What one alerter worker owns: the components of its domains (and, with the first domain,
    whatever is not in the inventory)."""

    def __init__(self, inv: Inventory, domains) -> None:
        self.domain_of = power_domains(inv)
        self.domains = frozenset(domains)
        unknown = self.domains - set(self.domain_of.values())
        if unknown:
            raise KeyError(f"no power domains {sorted(unknown)} in site {inv.site!r} "
                           f"(it has {sorted(set(self.domain_of.values()))})")
        self.default = min(self.domain_of.values(), default="")

    def domain(self, component: str) -> str:
        """The domain a component's signals are keyed by (the partition key on Kafka)."""
        return self.domain_of.get(component, self.default)

    def owns(self, component: str) -> bool:
        return self.domain(component) in self.domains


def domain_share(inv: Inventory, spec: str) -> DomainShare | None:
    """The share named by `spec` (`H1+H2,H3`: domains separated by commas); None when empty."""
    names = [d.strip() for d in spec.split(",") if d.strip()]
    return DomainShare(inv, names) if names else None
