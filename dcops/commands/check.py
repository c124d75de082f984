"""`dcops check site.yaml`: validate a site config."""

from __future__ import annotations

from dcops.site import load_site
from dcops.topology import build_inventory
from dcops.yamlconf import ConfigError


def add_arguments(p) -> None:
    p.add_argument("config", help="site YAML file")


def run(args) -> int:
    try:
        cfg = load_site(args.config)
    except ConfigError as exc:
        exc.report(f"{args.config}: {len(exc.problems)} problem(s)")
        return 1
    inv = build_inventory(cfg)
    kinds: dict[str, int] = {}
    for c in inv.components.values():
        kinds[c.kind] = kinds.get(c.kind, 0) + 1
    vendors: dict[str, int] = {}
    for v in inv.accel_tags["vendor"]:
        vendors[v] = vendors.get(v, 0) + 1
    print(f"{args.config}: OK - site {cfg.site}: {len(cfg.halls)} hall(s), {kinds.get('row', 0)} rows, "
          f"{kinds.get('rack', 0)} racks, {kinds.get('server', 0)} servers, {inv.n_accel} accelerators "
          f"({', '.join(f'{n} {v}' for v, n in sorted(vendors.items()))}), {kinds.get('ups', 0)} UPSes, "
          f"{kinds.get('pdu', 0)} PDUs, {kinds.get('cooling', 0)} cooling units")
    return 0
