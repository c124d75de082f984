"""`dcops agent`: the accelerator agent of one host, and the `agent` role of `dcops up`.

    dcops agent --once --format json          one poll of every GPU/NPU found, as readings
    dcops agent --once --rbln-stat-json F     read a saved `rbln-stat -j` output instead
    dcops agent --once --standin-site S.yaml --standin-host SERVER
                                              the same agent against the simulated SERVER
    dcops agent --site S.yaml [--interval 10] run: publish to the bus the site's settings name
    dcops agent --capabilities                which accelerators' power can be capped, and why not
    dcops agent --site S.yaml --control-port 9101 --control-key-env DCOPS_AGENT_KEY
                                              also serve the power-limit control API (signed tokens)
    dcops agent --mint-token NAME --control-key-env DCOPS_AGENT_KEY [--token-ttl 3600]
                                              print a control token for NAME (an operator, a runbook)

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
    p.add_argument("--serving-url", metavar="URL", default=None,
                   help="the local inference server's Prometheus endpoint (vLLM, SGLang), e.g. "
                        "http://127.0.0.1:8000/metrics: its tokens and requests are shared over this host's accelerators")
    p.add_argument("--standin-site", metavar="SITE.yaml", default=None,
                   help="run against the simulator for this site instead of real devices")
    p.add_argument("--standin-host", metavar="SERVER", default=None, help="the simulated server to be (with --standin-site)")
    p.add_argument("--seed", type=int, default=0, help="simulator seed (with --standin-site)")
    p.add_argument("--strict", action="store_true",
                   help="a read that fails with anything but an NVML error (a binding/driver mismatch) fails the command (exit 3)")
    p.add_argument("--capabilities", action="store_true",
                   help="print, per accelerator, whether its power limit can be set (min/max/default W) or why not")
    p.add_argument("--control-port", type=int, default=None, metavar="PORT",
                   help="serve the power-limit control API on PORT (needs --control-key-env)")
    p.add_argument("--control-host", default="0.0.0.0", help="address of the control API (default: all)")
    p.add_argument("--control-key-env", default="DCOPS_AGENT_KEY", metavar="VAR",
                   help="environment variable holding the key control tokens are signed with (default: DCOPS_AGENT_KEY)")
    p.add_argument("--control-audit", default="/var/lib/dcops/agent-power-audit.jsonl", metavar="FILE",
                   help="append-only audit trail of power-limit changes")
    p.add_argument("--mint-token", metavar="NAME", default=None, help="print a control token for NAME and exit")
    p.add_argument("--token-ttl", type=float, default=3600.0, help="lifetime of --mint-token in seconds")


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
    for gpu_agent, *_ in agents.gpu_hosts:
        gpu_agent.strict = args.strict
    if not agents.gpu_hosts and not agents.npu_hosts:
        print(f"dcops agent: {args.standin_host} has no accelerators", file=sys.stderr)
        return 1
    if args.capabilities:
        rows = [r for ctl in agents.power_controllers().values() for r in ctl.capabilities()]
        _print_capabilities(args.standin_host, rows, args.format)
        return 0 if rows else 1
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


def _control_key(args) -> bytes | None:
    import os

    key = os.environ.get(args.control_key_env, "")
    return key.encode() if key else None


def _capabilities(agent, fmt: str) -> int:
    from dcops.collectors.power_control import controller_for

    rows = controller_for(agent).capabilities()
    _print_capabilities(agent.host, rows, fmt)
    return 0 if rows else 1


def _print_capabilities(host: str, rows: list[dict], fmt: str) -> None:
    if fmt == "json":
        json.dump({"host": host, "accelerators": rows}, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        for r in rows:
            what = (f"settable {r['min_w']:g}..{r['max_w']:g} W (default {r['default_w']:g} W)" if r["settable"]
                    else f"not settable: {r['reason']}")
            print(f"{r['accel']:>3} {r['device']:<42} {r['vendor']:<10} {what}")


def _serve_control(agent, args, stop: threading.Event):
    """Start the control API beside the poll loop; returns a stop function."""
    key = _control_key(args)
    if key is None:
        raise SystemExit(f"dcops agent: --control-port needs a key in ${args.control_key_env}: "
                         "the control API is never served open")
    return serve_control(agent, key, args.control_host, args.control_port, args.control_audit)


def serve_control(agent, key: bytes, host: str, port: int, audit_path: str):
    """The power-limit control API of this host's agent, on waitress; returns a stop function."""
    from waitress.server import create_server

    from dcops.collectors.power_api import ControlApi, JsonlAudit
    from dcops.collectors.power_control import controller_for

    api = ControlApi({agent.host: controller_for(agent, JsonlAudit(audit_path))}, key)
    api.start()
    server = create_server(api, host=host, port=port, threads=4, ident="dcops-agent")
    threading.Thread(target=server.run, name="dcops-agent-control", daemon=True).start()
    log.warning("power-limit control API on %s:%d (audit trail %s)", host, server.effective_port, audit_path)

    def close() -> None:
        api.stop()
        server.close()
    return close


def run(args) -> int:
    if args.mint_token:
        from dcops.tokens import mint_token

        key = _control_key(args)
        if key is None:
            print(f"dcops agent: ${args.control_key_env} holds no key", file=sys.stderr)
            return 2
        print(mint_token(key, args.mint_token, args.token_ttl))
        return 0
    if args.control_port is not None and not 0 < args.control_port < 65536:
        print(f"dcops agent: --control-port {args.control_port} is not a TCP port (1-65535)", file=sys.stderr)
        return 2
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
                     prom_urls=args.prom_url, serving_url=args.serving_url)
    for note in agent.notes:
        print(f"dcops agent: {note}", file=sys.stderr)
    if agent.empty:
        print(f"dcops agent: no accelerator source works on {host}", file=sys.stderr)
        return 1
    if args.strict and agent.nvml is not None:
        agent.nvml.strict = True
    if args.capabilities:
        return _capabilities(agent, args.format)
    if args.once or cfg is None:
        return _print_loop(agent, args)
    stop = threading.Event()
    interval = args.interval or cfg.settings.interval_s
    from dcops.wiring import open_bus

    close_control = _serve_control(agent, args, stop) if args.control_port is not None else None
    bus = open_bus(cfg.settings.bus, client_id=f"agent-{host}")
    try:
        agent.run(bus, stop, interval)
    except KeyboardInterrupt:
        stop.set()
    finally:
        if close_control is not None:
            close_control()
        bus.flush()
        bus.close()
    return 0


def _print_loop(agent, args) -> int:
    from dcops.collectors.nvml_agent import NvmlBindingError

    while True:
        try:
            batches, events, problems = agent.poll()
        except NvmlBindingError as exc:
            print(f"dcops agent: {exc}", file=sys.stderr)
            return 3
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
    ctl = cfg.settings.agent
    close_control = None
    if ctl.control_key is not None:
        close_control = serve_control(agent, ctl.control_key.get_secret_value().encode(), ctl.control_host,
                                      ctl.control_port, ctl.control_audit)
    else:
        log.warning("agent role on %s: no settings.agent.control_key, so no power-limit control API "
                    "(runbook power caps cannot reach this host)", host)
    bus = open_bus(cfg.settings.bus, client_id=f"agent-{host}")
    try:
        agent.run(bus, stop, cfg.settings.interval_s)
    finally:
        if close_control is not None:
            close_control()
        metrics.health.remove("accelerators")
        bus.flush()
        bus.close()
