"""`dcops agent`: the accelerator agent of one host, and the `agent` role of `dcops up`.

    dcops agent --once --format json          one poll of every GPU/NPU found, as readings
    dcops agent --once --rbln-stat-json F     read a saved `rbln-stat -j` output instead
    dcops agent --once --standin-site S.yaml --standin-host SERVER
                                              the same agent against the simulated SERVER
    dcops agent --site S.yaml [--interval 10] run: publish to the bus the site's settings name

Readings are `{"accelerator": UUID, "vendor", "model", "metric", "unit", "value"}` in
canonical units (W, J, degC, MHz, %, bytes, count); a multi-die card's power is reported once,
on its first die. Exit status: 0 when at least one accelerator was read, 1 when none was
(each source says why on stderr), 2 for a bad command line or config file.
"""

from __future__ import annotations

import argparse
import json
import logging
import socket
import sys
import threading
import time

from dcops.yamlconf import ConfigError
from dcops.collectors.accel_common import readings

__all__ = ["add_arguments", "run", "run_role"]

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--once", action="store_true", help="poll once, print the readings and exit")
    p.add_argument("--format", choices=("json", "table"), default="table", help="output of --once (default: table)")
    p.add_argument("--identity", action="store_true",
                   help="with --once: print each accelerator's identity (UUID, serial, PCI bus id, versions, MIG mode)")
    p.add_argument("--host", default=None, help="this host's name in the site (default: the hostname)")
    p.add_argument("--site", default=None, help="site config: topology tags, and the bus to publish to")
    p.add_argument("--interval", type=float, default=None, help="seconds between polls (default: the site's interval_s)")
    p.add_argument("--no-nvml", action="store_true", help="do not read GPUs through NVML")
    p.add_argument("--rbln-stat-json", metavar="FILE", default=None,
                   help="read a saved `rbln-stat -j` output instead of running the tool")
    p.add_argument("--prom-url", action="append", default=[], metavar="URL",
                   help="also scrape a dcgm-exporter / NPU exporter / vLLM /metrics endpoint (repeatable)")
    p.add_argument("--standin-site", metavar="SITE.yaml", default=None,
                   help="run against the simulator for this site instead of real devices")
    p.add_argument("--standin-host", metavar="SERVER", default=None, help="the simulated server to be (with --standin-site)")
    p.add_argument("--seed", type=int, default=0, help="simulator seed (with --standin-site)")


def _print(recs: list[dict], fmt: str, out) -> None:
    try:
        _write(recs, fmt, out)
        out.flush()
    except BrokenPipeError:  # `dcops agent --once | head`: the reader has gone, that is fine
        pass


def _write(recs: list[dict], fmt: str, out) -> None:
    if fmt == "json":
        json.dump(recs, out, indent=1)
        out.write("\n")
        return
    for r in recs:
        extra = f"  [{', '.join(r['reasons'])}]" if r.get("reasons") else ""
        out.write(f"{r['accelerator']:<42} {r['vendor']:<10} {r['model']:<22} {r['metric']:<40} "
                  f"{r['value']:>16} {r['unit']}{extra}\n")


def _print_identities(ids: list[dict], fmt: str, out) -> None:
    try:
        if fmt == "json":
            json.dump(ids, out, indent=1)
            out.write("\n")
        else:
            for d in ids:
                rest = "  ".join(f"{k}={v}" for k, v in d.items() if k not in ("accelerator", "vendor", "model"))
                out.write(f"{d['accelerator']:<42} {d['vendor']:<10} {d['model']:<22} {rest}\n")
        out.flush()
    except BrokenPipeError:
        pass


def _standin(args) -> int:
    from dcops.sim import Simulator
    from dcops.site import load_site
    from dcops.collectors.sim_agents import SimAgents

    cfg = load_site(args.standin_site)
    sim = Simulator(cfg, seed=args.seed)
    if args.standin_host not in sim.inventory.components or sim.inventory.get(args.standin_host).kind != "server":
        servers = [s.name for s in sim.inventory.servers]
        print(f"dcops agent: {args.standin_host!r} is not a server of {args.standin_site} "
              f"(servers: {', '.join(servers[:8])}{' ...' if len(servers) > 8 else ''})", file=sys.stderr)
        return 2
    agents = SimAgents(sim, servers=[args.standin_host])
    if not agents.gpu_hosts and not agents.npu_hosts:
        print(f"dcops agent: {args.standin_host} has no accelerators", file=sys.stderr)
        return 1
    if args.once and args.identity:
        from dcops.collectors.host_agent import HostAgent

        sim.step()
        agents.poll()
        ids = []
        for agent, *_ in agents.gpu_hosts:
            ids += HostAgent(agent.host, nvml=agent).identities()
        for agent, *_ in agents.npu_hosts:
            ids += HostAgent(agent.host, npu=agent).identities()
        _print_identities(ids, args.format, sys.stdout)
        return 0 if ids else 1
    while True:
        sim.step()
        out = agents.poll()
        recs = [r for _, b, _ in out for r in readings(b)]
        _print(recs, args.format if args.once else "json", sys.stdout)
        if args.once:
            return 0 if recs else 1
        time.sleep(args.interval or sim.interval_s)


def run(args) -> int:
    if bool(args.standin_site) != bool(args.standin_host):
        print("dcops agent: --standin-site and --standin-host go together", file=sys.stderr)
        return 2
    try:
        if args.standin_site:
            return _standin(args)
        inventory, cfg = None, None
        if args.site:
            from dcops.site import load_site
            from dcops.topology import build_inventory

            cfg = load_site(args.site)
            inventory = build_inventory(cfg)
    except ConfigError as exc:
        print(f"dcops agent: {exc}", file=sys.stderr)
        return 2
    from dcops.collectors.host_agent import discover

    host = args.host or socket.gethostname()
    agent = discover(host, inventory, use_nvml=not args.no_nvml, rbln_json=args.rbln_stat_json,
                     prom_urls=args.prom_url)
    for note in agent.notes:
        print(f"dcops agent: {note}", file=sys.stderr)
    if agent.empty:
        print(f"dcops agent: no accelerator source works on {host}", file=sys.stderr)
        return 1
    if args.once or cfg is None:
        return _print_loop(agent, args)
    stop = threading.Event()
    interval = args.interval or cfg.settings.interval_s
    from dcops.wiring import open_bus

    bus = open_bus(cfg.settings.bus, client_id=f"agent-{host}")
    try:
        agent.run(bus, stop, interval)
    except KeyboardInterrupt:
        stop.set()
    finally:
        bus.flush()
        bus.close()
    return 0


def _print_loop(agent, args) -> int:
    while True:
        batches, events, problems = agent.poll()
        for p in problems:
            print(f"dcops agent: {p}", file=sys.stderr)
        recs = [r for b in batches for r in readings(b)]
        if args.once and args.identity:
            ids = agent.identities()
            _print_identities(ids, args.format, sys.stdout)
            if agent.nvml is not None:
                agent.nvml.close()
            return 0 if ids else 1
        _print(recs, args.format if args.once else "json", sys.stdout)
        for e in events:
            print(f"dcops agent: event {e.kind}: {e.message}", file=sys.stderr)
        if args.once:
            if agent.nvml is not None:
                agent.nvml.close()
            return 0 if recs else 1
        time.sleep(args.interval or 10.0)


def run_role(cfg, stop: threading.Event) -> None:
    """The `agent` role of `dcops up`: this host's accelerators, published to the site's bus.

    The host is found in the site by its hostname; sources are rediscovered every minute while
    none works (a driver loaded after boot is picked up)."""
    from dcops.topology import build_inventory
    from dcops.wiring import open_bus
    from dcops.collectors.host_agent import discover
    from dcops.metrics import Check, current

    host = socket.gethostname()
    inventory = build_inventory(cfg)
    agent = discover(host, inventory)
    state = {"agent": agent}

    def health() -> Check:  # an agent without an accelerator source cannot do its job: unhealthy
        a = state["agent"]
        if a.empty:
            return Check(False, f"no accelerator source on {host}: {'; '.join(a.notes) or 'none found'}")
        return Check(True, f"sources: {', '.join(k for k in ('nvml', 'npu', 'prom') if getattr(a, k, None))}")

    metrics = current()
    metrics.health.add("accelerators", health)
    while agent.empty:
        log.warning("agent role on %s: no accelerator source yet (%s); retrying in 60 s", host, "; ".join(agent.notes))
        if stop.wait(60.0):
            metrics.health.remove("accelerators")
            return
        agent = state["agent"] = discover(host, inventory)
    bus = open_bus(cfg.settings.bus, client_id=f"agent-{host}")
    try:
        agent.run(bus, stop, cfg.settings.interval_s)
    finally:
        metrics.health.remove("accelerators")
        bus.flush()
        bus.close()
