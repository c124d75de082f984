"""A small BER codec for SNMPv2c GET/GETBULK requests and their responses (RFC 3416).

pysnmp decodes every answer through pyasn1's generic, schema-driven decoder: about two thirds
of the poller's CPU. A v2c response has one fixed shape (SEQUENCE {version, community,
Response-PDU {request-id, error-status, error-index, SEQUENCE OF {OID, value}}}), so a
straight-line decoder over `bytes` does the same work in a fraction of the time. SNMPv3
(USM authentication and privacy) and notifications stay with pysnmp (snmp_engine.py).

Values come out as the poller wants them: `int` (INTEGER, Counter32/64, Gauge32, TimeTicks),
`str` (OCTET STRING as UTF-8, else Latin-1; OID and IpAddress dotted), `None` for NULL,
noSuchObject, noSuchInstance; `END_OF_MIB` for endOfMibView. Anything malformed raises
`BerError` naming what and where: never an IndexError from deep inside.
"""

from __future__ import annotations

__all__ = ["BerError", "END_OF_MIB", "decode_response", "encode_request", "GET", "GETNEXT", "GETBULK"]

GET, GETNEXT, GETBULK, RESPONSE = 0xA0, 0xA1, 0xA5, 0xA2


class BerError(ValueError):
    """The bytes are not an SNMPv2c response we can read."""


class _EndOfMib:
    def __repr__(self) -> str:
        return "END_OF_MIB"


END_OF_MIB = _EndOfMib()
_NULL_TAGS = {0x05: None, 0x80: None, 0x81: None, 0x82: END_OF_MIB}
_OID_CACHE: dict[str, bytes] = {}


def _len(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(b),)) + b


def _tlv(tag: int, body: bytes) -> bytes:
    return bytes((tag,)) + _len(len(body)) + body


def _int(v: int) -> bytes:
    return _tlv(0x02, v.to_bytes(max(1, (v.bit_length() + 8) // 8), "big", signed=True))


def _oid(oid: str) -> bytes:
    enc = _OID_CACHE.get(oid)
    if enc is not None:
        return enc
    try:
        arcs = [int(x) for x in oid.strip(".").split(".")]
    except ValueError:
        raise BerError(f"not a numeric OID: {oid!r}") from None
    if len(arcs) < 2:
        raise BerError(f"OID needs two arcs: {oid!r}")
    out = bytearray((arcs[0] * 40 + arcs[1],))
    for a in arcs[2:]:
        chunk = [a & 0x7F]
        a >>= 7
        while a:
            chunk.append(0x80 | (a & 0x7F))
            a >>= 7
        out += bytes(reversed(chunk))
    enc = _tlv(0x06, bytes(out))
    if len(_OID_CACHE) < 200_000:
        _OID_CACHE[oid] = enc
    return enc


_NULL_VB = b"\x05\x00"


def encode_request(community: bytes, request_id: int, pdu: int, oids, non_repeaters: int = 0, max_repetitions: int = 0) -> bytes:
    """A v2c GET / GETNEXT / GETBULK message (for GETBULK, error-status and error-index carry
    non-repeaters and max-repetitions)."""
    vbs = b"".join(_tlv(0x30, _oid(o) + _NULL_VB) for o in oids)
    body = _int(request_id) + _int(non_repeaters) + _int(max_repetitions) + _tlv(0x30, vbs)
    return _tlv(0x30, b"\x02\x01\x01" + _tlv(0x04, community) + _tlv(pdu, body))


def _read_len(buf: bytes, i: int, end: int) -> tuple[int, int]:
    if i >= end:
        raise BerError(f"length missing at byte {i}")
    n = buf[i]
    i += 1
    if n < 0x80:
        return n, i
    k = n & 0x7F
    if k == 0 or k > 4 or i + k > end:
        raise BerError(f"bad length form at byte {i - 1}")
    return int.from_bytes(buf[i:i + k], "big"), i + k


def _expect(buf: bytes, i: int, end: int, tag: int, what: str) -> tuple[int, int]:
    if i >= end or buf[i] != tag:
        got = f"0x{buf[i]:02x}" if i < end else "end of message"
        raise BerError(f"expected {what} (tag 0x{tag:02x}) at byte {i}, got {got}")
    n, j = _read_len(buf, i + 1, end)
    if j + n > end:
        raise BerError(f"{what} at byte {i} runs past the end ({n} bytes announced, {end - j} left)")
    return j, j + n


def _dec_oid(b: bytes) -> str:
    if not b:
        raise BerError("empty OID")
    first = b[0]
    if first < 80:
        arcs = [str(first // 40), str(first % 40)]
    else:
        arcs = ["2", str(first - 80)]
    v = 0
    for c in b[1:]:
        v = (v << 7) | (c & 0x7F)
        if not c & 0x80:
            arcs.append(str(v))
            v = 0
    if b[-1] & 0x80:
        raise BerError("OID ends inside an arc")
    return ".".join(arcs)


def _value(tag: int, b: bytes):
    if tag == 0x02:
        return int.from_bytes(b, "big", signed=True) if b else 0
    if tag in (0x41, 0x42, 0x43, 0x46, 0x47):  # Counter32, Gauge32/Unsigned32, TimeTicks, Counter64, UInteger32
        return int.from_bytes(b, "big", signed=False) if b else 0
    if tag == 0x04:
        try:
            return b.decode("utf-8")
        except UnicodeDecodeError:
            return b.decode("latin-1")
    if tag in _NULL_TAGS:
        return _NULL_TAGS[tag]
    if tag == 0x06:
        return _dec_oid(b)
    if tag == 0x40:
        if len(b) != 4:
            raise BerError(f"IpAddress of {len(b)} bytes")
        return ".".join(str(x) for x in b)
    if tag == 0x44:  # Opaque: left to the mapping, as text of its hex
        return b.hex()
    raise BerError(f"unknown value type 0x{tag:02x}")


def decode_response(buf: bytes) -> tuple[int, int, int, list[tuple[str, object]], bytes]:
    """(request_id, error_status, error_index, [(oid, value)], community) of a v2c Response."""
    end = len(buf)
    i, end = _expect(buf, 0, end, 0x30, "message SEQUENCE")
    j, k = _expect(buf, i, end, 0x02, "version")
    if buf[j:k] not in (b"\x01", b"\x00"):
        raise BerError(f"not an SNMPv1/v2c message (version {buf[j:k].hex()})")
    j, k2 = _expect(buf, k, end, 0x04, "community")
    community = bytes(buf[j:k2])
    i, pend = _expect(buf, k2, end, RESPONSE, "Response-PDU")
    j, k = _expect(buf, i, pend, 0x02, "request-id")
    rid = int.from_bytes(buf[j:k], "big", signed=True)
    j, k2 = _expect(buf, k, pend, 0x02, "error-status")
    status = int.from_bytes(buf[j:k2], "big", signed=True)
    j, k = _expect(buf, k2, pend, 0x02, "error-index")
    index = int.from_bytes(buf[j:k], "big", signed=True)
    i, lend = _expect(buf, k, pend, 0x30, "variable-bindings")
    out: list[tuple[str, object]] = []
    while i < lend:
        j, vend = _expect(buf, i, lend, 0x30, "variable-binding")
        a, b = _expect(buf, j, vend, 0x06, "name")
        name = _dec_oid(buf[a:b])
        if b >= vend:
            raise BerError(f"value missing for {name}")
        tag = buf[b]
        n, c = _read_len(buf, b + 1, vend)
        if c + n > vend:
            raise BerError(f"value of {name} runs past its variable-binding")
        out.append((name, _value(tag, bytes(buf[c:c + n]))))
        i = vend
    return rid, status, index, out, community
