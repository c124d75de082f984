"""The light SNMPv2c codec against pysnmp/pyasn1's own encoder and decoder, and on garbage."""

from __future__ import annotations

import pytest
from pyasn1.codec.ber import decoder, encoder
from pysnmp.proto import api, rfc1902, rfc1905

from dcops.collectors.snmp_ber import END_OF_MIB, GETBULK, BerError, decode_response, encode_request

P = api.v2c


def _response(rid: int, binds, status: int = 0, index: int = 0) -> bytes:
    pdu = P.ResponsePDU()
    P.apiPDU.set_defaults(pdu)
    P.apiPDU.set_request_id(pdu, rid)
    P.apiPDU.set_error_status(pdu, status)
    P.apiPDU.set_error_index(pdu, index)
    P.apiPDU.set_varbinds(pdu, binds)
    msg = P.Message()
    P.apiMessage.set_defaults(msg)
    P.apiMessage.set_community(msg, "public")
    P.apiMessage.set_pdu(msg, pdu)
    return encoder.encode(msg)


def test_request_decodes_with_pyasn1():
    raw = encode_request(b"public", 70000, GETBULK, ["1.3.6.1.2.1.33.1.2", "1.3.6.1.4.1.318.1.1.12.2.3.1.1.2"], 1, 25)
    msg, rest = decoder.decode(raw, asn1Spec=P.Message())
    assert rest == b""
    pdu = P.apiMessage.get_pdu(msg)
    assert int(P.apiBulkPDU.get_request_id(pdu)) == 70000
    assert int(P.apiBulkPDU.get_non_repeaters(pdu)) == 1 and int(P.apiBulkPDU.get_max_repetitions(pdu)) == 25
    assert [str(o) for o, _ in P.apiBulkPDU.get_varbinds(pdu)] == ["1.3.6.1.2.1.33.1.2", "1.3.6.1.4.1.318.1.1.12.2.3.1.1.2"]


def test_response_values_match_pysnmp_types():
    binds = [
        ("1.3.6.1.2.1.33.1.2.3.0", rfc1902.Integer(-2147483648)),
        ("1.3.6.1.2.1.33.1.2.4.0", rfc1902.Gauge32(4294967295)),
        ("1.3.6.1.2.1.1.3.0", rfc1902.TimeTicks(123456)),
        ("1.3.6.1.2.1.31.1.1.1.6.1", rfc1902.Counter64(2 ** 64 - 1)),
        ("1.3.6.1.2.1.1.1.0", rfc1902.OctetString("Smart-UPS 750 \u00e9".encode("latin-1"))),
        ("1.3.6.1.2.1.1.2.0", rfc1902.ObjectIdentifier("1.3.6.1.4.1.318.1.3.27")),
        ("1.3.6.1.2.1.4.20.1.1.10", rfc1902.IpAddress("10.0.0.1")),
        ("1.3.6.1.2.1.33.1.9.9.0", rfc1905.NoSuchInstance("")),
        ("1.3.6.1.2.1.99", rfc1905.EndOfMibView("")),
        ("1.3.6.1.4.1.318.1.1.1.1.1.1.0", rfc1902.OctetString("x" * 300)),  # long-form length
    ]
    rid, status, index, vbs, community = decode_response(_response(12345, binds))
    assert (rid, status, index, community) == (12345, 0, 0, b"public")
    got = dict(vbs)
    assert got["1.3.6.1.2.1.33.1.2.3.0"] == -2147483648 and got["1.3.6.1.2.1.33.1.2.4.0"] == 4294967295
    assert got["1.3.6.1.2.1.1.3.0"] == 123456 and got["1.3.6.1.2.1.31.1.1.1.6.1"] == 2 ** 64 - 1
    assert got["1.3.6.1.2.1.1.1.0"] == "Smart-UPS 750 \u00e9"  # not UTF-8: Latin-1, like the pysnmp path
    assert got["1.3.6.1.2.1.1.2.0"] == "1.3.6.1.4.1.318.1.3.27" and got["1.3.6.1.2.1.4.20.1.1.10"] == "10.0.0.1"
    assert got["1.3.6.1.2.1.33.1.9.9.0"] is None and got["1.3.6.1.2.1.99"] is END_OF_MIB
    assert got["1.3.6.1.4.1.318.1.1.1.1.1.1.0"] == "x" * 300


def test_error_status_and_index_come_through():
    _, status, index, _, _ = decode_response(_response(1, [("1.3.6.1.2.1.1.1.0", rfc1902.Null(""))], status=1, index=1))
    assert (status, index) == (1, 1)


@pytest.mark.parametrize("garbage", [b"", b"\x30", b"\x30\x82\xff\xff\x02\x01\x01", b"hello world",
                                     b"\x30\x05\x02\x01\x03\x04\x00",  # SNMPv3 version number
                                     ])
def test_garbage_is_a_clear_error(garbage):
    with pytest.raises(BerError) as ei:
        decode_response(garbage)
    assert str(ei.value)


def test_truncated_answers_are_clear_errors_at_every_cut():
    full = _response(7, [("1.3.6.1.2.1.1.1.0", rfc1902.OctetString("abc")), ("1.3.6.1.2.1.1.3.0", rfc1902.TimeTicks(5))])
    for cut in range(len(full)):
        with pytest.raises(BerError):
            decode_response(full[:cut])


def test_an_agent_answering_garbage_gives_a_clean_poll_error():
    """A real UDP peer on loopback that answers every request with junk: the poll fails with a
    message naming the agent, no library traceback, and the client stays usable."""
    import asyncio

    from dcops.collectors.snmp_engine import SnmpClient
    from dcops.collectors.snmp_poller import poll_agent
    from dcops.site import SnmpTarget

    class Junk(asyncio.DatagramProtocol):
        def connection_made(self, transport):
            self.t = transport

        def datagram_received(self, data, addr):
            self.t.sendto(b"\x30\x03\x02\x01\x01garbage", addr)

    async def go():
        loop = asyncio.get_running_loop()
        t, _ = await loop.create_datagram_endpoint(Junk, local_addr=("127.0.0.1", 0))
        port = t.get_extra_info("sockname")[1]
        client = SnmpClient()
        try:
            return await poll_agent(client, SnmpTarget(port=port, community="public", timeout_s=1, retries=0))
        finally:
            client.close()
            t.close()

    res = asyncio.run(go())
    assert not res.ok and "malformed answer" in res.error and res.error.startswith("127.0.0.1:")
