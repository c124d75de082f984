"""SNMPv2c requests without pysnmp: one UDP socket for every v2c agent, our BER codec.

`V2cTransport.request(addr, community, pdu, oids, ...)` sends one GET/GETNEXT/GETBULK and
returns (error_status, error_index, [(oid, value)]); answers are matched by request-id (and
sender), so one socket serves 1,000 agents with no per-agent state in an engine. Timeouts
and retries follow the target's settings. An answer that cannot be decoded fails the oldest
request waiting on that sender with `SnmpError("...: malformed answer ...")`, not a traceback.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import socket

from dcops.collectors.snmp_ber import BerError, decode_response, encode_request

__all__ = ["V2cTransport", "V2cError", "V2cTimeout"]


class V2cError(Exception):
    pass


class V2cTimeout(V2cError):
    pass


class _Proto(asyncio.DatagramProtocol):
    def __init__(self, owner: "V2cTransport") -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr) -> None:
        self.owner._received(data, addr)

    def error_received(self, exc: Exception) -> None:  # ICMP port unreachable and friends: the request times out
        pass


class V2cTransport:
    def __init__(self) -> None:
        self._transport: asyncio.DatagramTransport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ids = itertools.count(random.randrange(1, 1 << 30))
        self._pending: dict[int, tuple[tuple, asyncio.Future]] = {}
        self._family = socket.AF_INET

    async def _ensure(self, family: int) -> None:
        loop = asyncio.get_running_loop()
        if self._transport is not None and self._loop is loop and self._family == family:
            return
        self.close()
        self._family = family
        self._loop = loop
        self._transport, _ = await loop.create_datagram_endpoint(lambda: _Proto(self), family=family,
                                                                 local_addr=("::" if family == socket.AF_INET6 else "0.0.0.0", 0))

    def _received(self, data: bytes, addr) -> None:
        try:
            rid, status, index, vbs, _ = decode_response(data)
        except BerError as exc:
            for k, (want, fut) in list(self._pending.items()):
                if want[:2] == tuple(addr[:2]) and not fut.done():
                    fut.set_exception(V2cError(f"malformed answer ({exc})"))
                    break
            return
        entry = self._pending.get(rid & 0x7FFFFFFF)
        if entry is None or entry[0][:2] != tuple(addr[:2]) or entry[1].done():
            return  # a late answer to a retried request, or not ours
        entry[1].set_result((status, index, vbs))

    async def request(self, addr: tuple[str, int], community: bytes, pdu: int, oids, *, non_repeaters: int = 0,
                      max_repetitions: int = 0, timeout: float = 2.0, retries: int = 1):
        family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
        await self._ensure(family)
        rid = next(self._ids) & 0x7FFFFFFF
        msg = encode_request(community, rid, pdu, oids, non_repeaters, max_repetitions)
        fut = self._loop.create_future()
        self._pending[rid] = (addr, fut)
        try:
            for _ in range(retries + 1):
                self._transport.sendto(msg, addr)
                try:
                    return await asyncio.wait_for(asyncio.shield(fut), timeout)
                except asyncio.TimeoutError:
                    continue
            raise V2cTimeout("no answer")
        finally:
            self._pending.pop(rid, None)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
