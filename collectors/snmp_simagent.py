"""The simulator's PDUs, UPSes, cooling units and environment sensors as real SNMP agents.

`serve_simulator(sim)` opens one SNMPv2c agent per device on loopback (own UDP port, community
`public`), answering GET, GETNEXT and GETBULK from the simulator's current `sim.batches()`,
so `dcops demo` polls them through the unchanged collector (`snmp_poller`). The values live in
a table under NET-SNMP's experimental playpen (1.3.6.1.4.1.8072.9999.9999, meant for exactly
this), described by the `dcops-sim` profile:

    .2.1.2.<row>  metric name (catalogue)     .2.1.3.<row>  index tag     .2.1.4.<row>  value (decimal text)

sysObjectID is 1.3.6.1.4.1.8072.9999.9999.1, which picks the profile. Values are refreshed from
the simulator at most every `refresh_s` seconds, on demand. This module is an SNMP *agent*; it
uses pysnmp's protocol layer (message types and BER), not its client API.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import math
import threading
import time
from types import MappingProxyType
from typing import Callable

from pyasn1.codec.ber import decoder, encoder
from pysnmp.proto import api
from pysnmp.proto.api import v2c
from pysnmp.proto.api.verdec import decode_message_version

from dcops.site import SnmpTarget

__all__ = ["SIM_ROOT", "SIM_SYSOBJECTID", "SIM_TRAPS", "serve_simulator", "sim_device_tags", "sim_poll_targets", "tables_from_batches", "trap_message"]

log = logging.getLogger(__name__)

SIM_ROOT = (1, 3, 6, 1, 4, 1, 8072, 9999, 9999)
SIM_SYSOBJECTID = SIM_ROOT + (1,)
MEASUREMENTS = ("pdu", "ups", "cooling", "env")
_SYS_DESCR = (1, 3, 6, 1, 2, 1, 1, 1, 0)
_SYS_OID = (1, 3, 6, 1, 2, 1, 1, 2, 0)
_SYS_UPTIME = (1, 3, 6, 1, 2, 1, 1, 3, 0)
_MAX_VARBINDS = 600
_TRAP_OID = (1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0)
_SYS_NAME = (1, 3, 6, 1, 2, 1, 1, 5, 0)

# Simulator events the simulated devices announce as SNMPv2c traps (see collectors/data/snmp/traps.yaml):
# kind -> (snmpTrapOID, extra var-binds)
SIM_TRAPS = MappingProxyType({
    "ups_on_battery": ((1, 3, 6, 1, 2, 1, 33, 2, 1), ()),                       # UPS-MIB upsTrapOnBattery
    "ups_on_utility": ((1, 3, 6, 1, 2, 1, 33, 2, 4),                            # upsTrapAlarmEntryRemoved
                       (((1, 3, 6, 1, 2, 1, 33, 1, 6, 2, 1, 2, 1), (1, 3, 6, 1, 2, 1, 33, 1, 6, 3, 2)),)),  # upsAlarmOnBattery
    "breaker_trip": (SIM_ROOT + (7, 0, 3), ()),
    "breaker_closed": (SIM_ROOT + (7, 0, 4), ()),
    "cooling_fault": (SIM_ROOT + (7, 0, 5), ()),
    "cooling_recovered": (SIM_ROOT + (7, 0, 6), ()),
})


def trap_message(kind: str, device: str, community: str, uptime_cs: int) -> bytes | None:
    """The SNMPv2c trap a simulated device sends for a simulator event (None: not announced)."""
    spec = SIM_TRAPS.get(kind)
    if spec is None:
        return None
    trap_oid, extra = spec
    pdu = v2c.TrapPDU()
    v2c.apiTrapPDU.set_defaults(pdu)
    vbs = [(v2c.ObjectIdentifier(_SYS_UPTIME), v2c.TimeTicks(uptime_cs)),
           (v2c.ObjectIdentifier(_TRAP_OID), v2c.ObjectIdentifier(trap_oid)),
           (v2c.ObjectIdentifier(_SYS_NAME), v2c.OctetString(device))]
    vbs += [(v2c.ObjectIdentifier(o), v2c.ObjectIdentifier(v)) for o, v in extra]
    v2c.apiTrapPDU.set_varbinds(pdu, vbs)
    msg = v2c.Message()
    v2c.apiMessage.set_defaults(msg)
    v2c.apiMessage.set_community(msg, community)
    v2c.apiMessage.set_pdu(msg, pdu)
    return encoder.encode(msg)


def tables_from_batches(batches) -> dict[str, list[tuple[tuple[int, ...], str, object]]]:
    """{device: sorted [(oid, kind, value)]} for the facility measurements (pure)."""
    rows: dict[str, list[tuple[str, str, float]]] = {}
    for b in batches:
        if b.measurement not in MEASUREMENTS or len(b) == 0:
            continue
        dev, idx = b.tags["device"], b.tags.get("index")
        for name, col in b.fields.items():
            for i in range(len(b)):
                v = float(col[i])
                if math.isfinite(v):
                    rows.setdefault(str(dev[i]), []).append((name, "" if idx is None else str(idx[i]), v))
    out = {}
    for dev, items in rows.items():
        table = [(_SYS_DESCR, "s", f"dcops simulated device {dev}"), (_SYS_OID, "o", SIM_SYSOBJECTID), (_SYS_UPTIME, "t", 0)]
        for k, (name, idx, v) in enumerate(items, start=1):
            table += [(SIM_ROOT + (2, 1, 2, k), "s", name), (SIM_ROOT + (2, 1, 3, k), "s", idx),
                      (SIM_ROOT + (2, 1, 4, k), "s", repr(v))]
        table.sort(key=lambda t: t[0])
        out[dev] = table
    return out


class _Tables:
    """The current tables, rebuilt from the simulator when older than `refresh_s`."""

    def __init__(self, sim, refresh_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.sim, self.refresh_s, self.clock = sim, refresh_s, clock
        self._lock = threading.Lock()
        self._at = -math.inf
        self._tables: dict[str, tuple[list, list]] = {}
        self.started = clock()

    def get(self, device: str):
        with self._lock:
            if self.clock() - self._at >= self.refresh_s:
                built = tables_from_batches(self.sim.batches())
                self._tables = {d: ([t[0] for t in tab], tab) for d, tab in built.items()}
                self._at = self.clock()
            return self._tables.get(device, ([], []))


def _value(kind: str, v, uptime_cs: int):
    if kind == "t":
        return v2c.TimeTicks(uptime_cs)
    return v2c.OctetString(v) if kind == "s" else v2c.ObjectIdentifier(v)


class _Agent(asyncio.DatagramProtocol):
    def __init__(self, device: str, tables: _Tables, community: str) -> None:
        self.device, self.tables, self.community = device, tables, community
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        try:
            rsp = self._answer(data)
        except Exception as exc:  # malformed request: drop it, like any agent
            log.debug("sim agent %s: dropped a request from %s: %s", self.device, addr, exc)
            return
        if rsp is not None:
            self.transport.sendto(rsp, addr)

    def _answer(self, data: bytes) -> bytes | None:
        if int(decode_message_version(data)) != api.SNMP_VERSION_2C:
            return None
        req, _ = decoder.decode(data, asn1Spec=v2c.Message())
        if str(v2c.apiMessage.get_community(req)) != self.community:
            return None
        pdu = v2c.apiMessage.get_pdu(req)
        keys, table = self.tables.get(self.device)
        uptime = int((self.tables.clock() - self.tables.started) * 100)

        def exact(oid):
            i = bisect.bisect_left(keys, oid)
            if i < len(keys) and keys[i] == oid:
                return _value(table[i][1], table[i][2], uptime)
            return v2c.NoSuchInstance("")

        def nxt(oid):
            i = bisect.bisect_right(keys, oid)
            if i >= len(keys):
                return oid, v2c.EndOfMibView("")
            return keys[i], _value(table[i][1], table[i][2], uptime)

        req_vbs = [tuple(o) for o, _ in v2c.apiPDU.get_varbinds(pdu)]
        out: list = []
        if pdu.isSameTypeWith(v2c.GetRequestPDU()):
            out = [(o, exact(o)) for o in req_vbs]
        elif pdu.isSameTypeWith(v2c.GetNextRequestPDU()):
            out = [nxt(o) for o in req_vbs]
        elif pdu.isSameTypeWith(v2c.GetBulkRequestPDU()):
            n = min(int(v2c.apiBulkPDU.get_non_repeaters(pdu)), len(req_vbs))
            m = max(int(v2c.apiBulkPDU.get_max_repetitions(pdu)), 0)
            out = [nxt(o) for o in req_vbs[:n]]
            cursors = req_vbs[n:]
            for _ in range(m):
                if not cursors or len(out) + len(cursors) > _MAX_VARBINDS:
                    break
                step = [nxt(o) for o in cursors]
                out += step
                cursors = [o for o, _ in step]
                if all(isinstance(v, v2c.EndOfMibView) for _, v in step):
                    break
        else:
            return None
        rsp = v2c.apiMessage.get_response(req)
        rpdu = v2c.apiMessage.get_pdu(rsp)
        v2c.apiPDU.set_varbinds(rpdu, [(v2c.ObjectIdentifier(o), v) for o, v in out])
        return encoder.encode(rsp)


def serve_simulator(sim, host: str = "127.0.0.1", port: int = 0, community: str = "public",
                    refresh_s: float = 1.0, trap_to: tuple[str, int] | None = None,
                    ) -> tuple[dict[str, int], Callable[[], None]]:
    """Serve every simulated facility device; returns ({device: udp port}, stop).

    `port` 0: each device gets a free port; otherwise devices get `port`, `port + 1`, ... in
    name order. `trap_to` (host, port): the devices also send SNMPv2c traps there for the
    simulator's UPS, breaker and cooling events (`SIM_TRAPS`, sysName.0 = device), from their
    own agent port. Runs in a daemon thread with its own event loop; `stop()` closes everything.
    """
    tables = _Tables(sim, refresh_s)
    devices = sorted(tables_from_batches(sim.batches()))
    ready = threading.Event()
    endpoints: dict[str, int] = {}
    state: dict = {}

    async def main() -> None:
        loop = asyncio.get_running_loop()
        state["loop"], state["stop"] = loop, asyncio.Event()
        transports = []
        try:
            for k, dev in enumerate(devices):
                tr, _ = await loop.create_datagram_endpoint(lambda d=dev: _Agent(d, tables, community),
                                                            local_addr=(host, port + k if port else 0))
                transports.append(tr)
                endpoints[dev] = tr.get_extra_info("sockname")[1]
        except Exception as exc:
            state["error"] = exc
        ready.set()
        if "error" not in state:
            if trap_to is not None:
                by_dev = dict(zip(devices, transports))
                forward = asyncio.create_task(_forward_events(sim, by_dev, trap_to, community, tables))
            await state["stop"].wait()
            if trap_to is not None:
                forward.cancel()
        for tr in transports:
            tr.close()

    th = threading.Thread(target=lambda: asyncio.run(main()), name="dcops-snmp-simagent", daemon=True)
    th.start()
    ready.wait(30)
    if "error" in state:
        th.join(5)
        raise OSError(f"cannot serve simulated SNMP agents on {host}: {state['error']}")

    def stop() -> None:
        loop = state.get("loop")
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(state["stop"].set)
        th.join(10)

    return dict(endpoints), stop


async def _forward_events(sim, transports: dict, trap_to: tuple[str, int], community: str, tables: _Tables,
                         period_s: float = 0.5) -> None:
    _, cursor = sim.events_since(0)  # announce what happens from now on
    while True:
        await asyncio.sleep(period_s)
        events, cursor = sim.events_since(cursor)
        for e in events:
            dev = e.target.get("device", "")
            tr = transports.get(dev)
            msg = trap_message(e.kind, dev, community, int((tables.clock() - tables.started) * 100)) if tr else None
            if msg is not None:
                tr.sendto(msg, trap_to)


def sim_device_tags(sim, endpoints: dict[str, int]) -> dict[str, dict[str, str]]:
    """{device: topology tags} for the served devices (the trap receiver's `devices` map)."""
    inv = sim.inventory
    out = {}
    for dev in endpoints:
        comp = inv.components.get(dev)
        tags = {"site": inv.site, "device": dev}
        if comp is not None:
            tags.update({k: v for k, v in (("hall", comp.hall), ("row", comp.row), ("rack", comp.rack)) if v})
        out[dev] = tags
    return out


def sim_poll_targets(sim, endpoints: dict[str, int], host: str = "127.0.0.1", community: str = "public",
                     interval_s: float | None = None):
    """PollTargets for the served devices, tagged from the simulator's inventory."""
    from dcops.collectors.snmp_poller import PollTarget

    tags_of = sim_device_tags(sim, endpoints)
    out = []
    for dev, p in sorted(endpoints.items()):
        tags = tags_of[dev]
        snmp = SnmpTarget(host=host, port=p, community=community, profile="dcops-sim",
                          interval_s=interval_s or getattr(sim, "interval_s", 10.0))
        out.append(PollTarget(dev, tags, snmp))
    return out
