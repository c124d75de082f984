"""`dcops check SITE.yaml` (or `-c SITE.yaml`): validate a site config, reporting every problem in
one pass: schema errors and, for the parts that did validate, cross-reference errors (unknown PDU,
a row in no cooling zone, ...) that a first schema error would otherwise hide.

Exit status 0 when the config is valid, 1 when it has problems.
"""

from __future__ import annotations

import copy
import json
import sys

from pydantic import ValidationError

from dcops.site import SiteConfig, load_site
from dcops.topology import build_inventory
from dcops.yamlconf import ConfigError, ConfigProblem, parse_yaml, problems_at, read_config_text


def add_arguments(p) -> None:
    p.add_argument("config", nargs="?", help="site YAML file (or -c FILE)")
    p.add_argument("--format", choices=("text", "json"), default="text")


def site_problems(path: str) -> list[ConfigProblem]:
    """Every problem of the site config at `path` (empty when it loads)."""
    try:
        load_site(path)
        return []
    except ConfigError as exc:
        first = list(exc.problems)
    try:
        data, lines = parse_yaml(read_config_text(path), str(path))
    except ConfigError:
        return first
    return first + _cross_problems_of_valid_parts(data, lines, str(path))


def _cross_problems_of_valid_parts(data, lines, file: str) -> list[ConfigProblem]:
    """Leave out what failed the schema (the list item holding each error, or the field), validate the
    rest, and cross-check it. Paths are mapped back to the file; a problem that only names
    something left out is dropped (it is a consequence, not a finding)."""
    from dcops.site import _cross_check
    from dcops.yamlconf import _data_path

    if not isinstance(data, dict):
        return []
    pruned = copy.deepcopy(data)
    removed: dict[tuple, set[int]] = {}
    removed_names: set[str] = set()

    def to_orig(path) -> tuple:
        out: list = []
        for comp in path:
            if isinstance(comp, int) and not isinstance(comp, bool):
                idx = comp
                for r in sorted(removed.get(tuple(out), ())):
                    if r <= idx:
                        idx += 1
                out.append(idx)
            else:
                out.append(comp)
        return tuple(out)

    for _ in range(50):
        try:
            cfg = SiteConfig.model_validate(pruned)
            break
        except ValidationError as exc:
            cuts = set()
            errors = exc.errors(include_url=False)
            locs = [tuple(e["loc"]) for e in errors]
            for err in errors:
                loc0 = tuple(err["loc"])
                if err["type"] == "too_short" and any(len(o) > len(loc0) and o[: len(loc0)] == loc0 for o in locs):
                    continue  # a container reported short because its items failed: those are cut instead
                loc = _data_path(pruned, tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))))
                ints = [i for i, c in enumerate(loc) if isinstance(c, int)]
                if ints:
                    cuts.add(loc[: ints[-1] + 1])
                elif loc:
                    cuts.add(loc if _has(pruned, loc) else loc[:-1])
            cuts.discard(())
            if not cuts:
                return []
            for cut in sorted(cuts, key=lambda c: (len(c), c[-1] if isinstance(c[-1], int) else -1), reverse=True):
                parent = _get(pruned, cut[:-1])
                if parent is None:
                    continue
                if isinstance(cut[-1], int):
                    if cut[-1] < len(parent):
                        item = parent.pop(cut[-1])
                        if isinstance(item, dict) and isinstance(item.get("name"), str):
                            removed_names.add(item["name"])
                        orig = to_orig(cut)
                        removed.setdefault(orig[:-1], set()).add(orig[-1])
                elif isinstance(parent, dict) and cut[-1] in parent:
                    del parent[cut[-1]]
    else:
        return []
    found = [(to_orig(path), msg) for path, msg in _cross_check(cfg) if not any(repr(n) in msg for n in removed_names)]
    return problems_at(file, lines, found)


def _get(data, path):
    cur = data
    for c in path:
        try:
            cur = cur[c]
        except (KeyError, IndexError, TypeError):
            return None
    return cur


def _has(data, path) -> bool:
    parent = _get(data, path[:-1])
    return isinstance(parent, dict) and path[-1] in parent


def _summary(cfg) -> dict:
    inv = build_inventory(cfg)
    kinds: dict[str, int] = {}
    for c in inv.components.values():
        kinds[c.kind] = kinds.get(c.kind, 0) + 1
    vendors: dict[str, int] = {}
    for v in inv.accel_tags["vendor"]:
        vendors[v] = vendors.get(v, 0) + 1
    return {"site": cfg.site, "halls": len(cfg.halls), "rows": kinds.get("row", 0), "racks": kinds.get("rack", 0),
            "servers": kinds.get("server", 0), "accelerators": inv.n_accel, "vendors": dict(sorted(vendors.items())),
            "upses": kinds.get("ups", 0), "pdus": kinds.get("pdu", 0), "cooling_units": kinds.get("cooling", 0)}


def run(args) -> int:
    if not args.config:
        print("dcops check: name the site YAML (dcops check SITE.yaml, or -c SITE.yaml)", file=sys.stderr)
        return 2
    try:
        problems = site_problems(args.config)
    except OSError as exc:
        problems = [ConfigProblem(args.config, None, "", f"cannot read ({exc.strerror})")]
    summary = None if problems else _summary(load_site(args.config))
    if args.format == "json":
        print(json.dumps({"file": args.config, "ok": not problems, "summary": summary,
                          "problems": [{"file": p.file, "line": p.line, "field": p.field, "message": p.message}
                                       for p in problems]}, indent=2))
        return 1 if problems else 0
    if problems:
        ConfigError(problems).report(f"{args.config}: {len(problems)} problem(s)")
        return 1
    s = summary
    print(f"{args.config}: OK - site {s['site']}: {s['halls']} hall(s), {s['rows']} rows, {s['racks']} racks, "
          f"{s['servers']} servers, {s['accelerators']} accelerators "
          f"({', '.join(f'{n} {v}' for v, n in s['vendors'].items())}), {s['upses']} UPSes, "
          f"{s['pdus']} PDUs, {s['cooling_units']} cooling units")
    return 0
