"""The pysnmp 7 adapter: the only module that imports pysnmp's high-level API.

It turns our `SnmpTarget` into pysnmp auth/transport objects, runs GET, GETBULK column walks
and subtree probes on ONE `SnmpEngine` per process (close it on exit), converts pysnmp values
to plain Python (`int`, `str`; nothing for noSuchObject/noSuchInstance/endOfMibView) and
pysnmp's error indications to ours:

- `SnmpTimeout`: no answer within the target's timeout and retries.
- `SnmpAuthError`: SNMPv3 user, auth or privacy key/protocol rejected (clear text, no secrets).
- `SnmpError`: anything else the agent or the transport reports.

Column walks send one GETBULK per round for all columns still open (like `bulk_walk_cmd` with
`lexicographicMode=False`, but for many columns at once): a column ends at the first OID
outside its subtree, at endOfMibView, or at a non-increasing OID.
"""

from __future__ import annotations

from dataclasses import dataclass

from pysnmp.hlapi.v3arch.asyncio import (
    USM_AUTH_HMAC96_MD5,
    USM_AUTH_HMAC96_SHA,
    USM_AUTH_HMAC192_SHA256,
    USM_AUTH_HMAC384_SHA512,
    USM_AUTH_NONE,
    USM_PRIV_CBC56_DES,
    USM_PRIV_CFB128_AES,
    USM_PRIV_CFB256_AES_BLUMENTHAL,
    USM_PRIV_NONE,
    CommunityData,
    ContextData,
    Integer,
    IpAddress,
    ObjectIdentifier,
    ObjectIdentity,
    ObjectType,
    OctetString,
    SnmpEngine,
    UdpTransportTarget,
    UsmUserData,
    bulk_cmd,
    get_cmd,
)
from pysnmp.hlapi.v3arch.asyncio.cmdgen import LCD
from pysnmp.proto import errind

from dcops.site import SnmpTarget

__all__ = ["NotificationListener", "SnmpAuthError", "SnmpClient", "SnmpError", "SnmpTimeout", "Session", "to_python"]

AUTH_PROTOCOLS = {
    "SHA": USM_AUTH_HMAC96_SHA, "SHA256": USM_AUTH_HMAC192_SHA256, "SHA512": USM_AUTH_HMAC384_SHA512,
    "MD5": USM_AUTH_HMAC96_MD5, "none": USM_AUTH_NONE,
}
# AES-256 as net-snmp, Cisco-free agents and RFC-draft Blumenthal key extension define it
PRIV_PROTOCOLS = {"AES128": USM_PRIV_CFB128_AES, "AES256": USM_PRIV_CFB256_AES_BLUMENTHAL, "DES": USM_PRIV_CBC56_DES, "none": USM_PRIV_NONE}

_AUTH_ERRORS = {
    errind.UnknownUserName: "unknown SNMPv3 user",
    errind.WrongDigest: "SNMPv3 authentication failed (wrong auth key or auth protocol)",
    errind.DecryptionError: "SNMPv3 decryption failed (wrong privacy key or privacy protocol)",
    errind.AuthenticationFailure: "SNMPv3 authentication failure",
    errind.AuthenticationError: "SNMPv3 authentication error",
    errind.UnsupportedSecurityLevel: "SNMPv3 security level not accepted by the agent (authPriv expected?)",
    errind.NotInTimeWindow: "SNMPv3 message outside the agent's time window",
    errind.UnknownSecurityName: "unknown SNMPv3 security name",
}


class SnmpError(Exception):
    """An SNMP operation failed; the message names the agent and what went wrong."""


class SnmpTimeout(SnmpError):
    pass


class SnmpAuthError(SnmpError):
    pass


@dataclass(frozen=True)
class Session:
    """What pysnmp needs to talk to one agent (built once per target); v2c sessions also carry
    what the light path needs (address, community, timeout, retries) in `fast`."""

    name: str
    auth: object
    transport: object
    fast: tuple | None = None  # ((ip, port), community bytes, timeout_s, retries) for SNMPv2c


_ERROR_STATUS = ("noError", "tooBig", "noSuchName", "badValue", "readOnly", "genErr", "noAccess", "wrongType",
                 "wrongLength", "wrongEncoding", "wrongValue", "noCreation", "inconsistentValue",
                 "resourceUnavailable", "commitFailed", "undoFailed", "authorizationError", "notWritable",
                 "inconsistentName")


def to_python(value):
    """pysnmp value -> int | str | None (None for the 'no value' exception types)."""
    tag = value.__class__.__name__
    if tag in ("NoSuchObject", "NoSuchInstance", "EndOfMibView", "Null"):
        return None
    if isinstance(value, Integer) or tag in ("Counter32", "Counter64", "Gauge32", "Unsigned32", "TimeTicks", "Integer32"):
        return int(value)
    if isinstance(value, IpAddress):
        return value.prettyPrint()
    if isinstance(value, OctetString):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("latin-1")
    if isinstance(value, ObjectIdentifier):
        return str(value)
    return value.prettyPrint() if hasattr(value, "prettyPrint") else str(value)  # Opaque, Bits: left to the mapping


def _oid(o: str) -> ObjectType:
    return ObjectType(ObjectIdentity(o.lstrip(".")))


class SnmpClient:
    """Owns the process's SnmpEngine. Use `await client.session(target)` then get/walk/probe."""

    def __init__(self, fast_v2c: bool = True) -> None:
        from dcops.collectors.snmp_fastv2c import V2cTransport

        self.fast_v2c = fast_v2c  # SNMPv2c through our BER codec (snmp_ber.py); v3 and traps always pysnmp
        self._v2c = V2cTransport()
        self._engine = SnmpEngine()
        self._ctx = ContextData()
        self._vb: dict[str, ObjectType] = {}  # request var-binds, resolved once (MIB lookup is costly)

    def _oid(self, o: str) -> ObjectType:
        vb = self._vb.get(o)
        if vb is None:
            if len(self._vb) > 100_000:
                self._vb.clear()
            vb = self._vb[o] = _oid(o)
        return vb

    def close(self) -> None:
        self._v2c.close()
        self._engine.close_dispatcher()

    async def session(self, target: SnmpTarget) -> Session:
        name = f"{target.host}:{target.port}"
        if target.version == "3":
            if not target.user:
                raise SnmpError(f"{name}: SNMPv3 needs a user")
            auth = UsmUserData(
                target.user,
                authKey=target.auth_key.get_secret_value() if target.auth_key else None,
                privKey=target.priv_key.get_secret_value() if target.priv_key else None,
                authProtocol=AUTH_PROTOCOLS[target.auth_protocol] if target.auth_key else USM_AUTH_NONE,
                privProtocol=PRIV_PROTOCOLS[target.priv_protocol] if target.priv_key else USM_PRIV_NONE,
            )
        else:
            auth = CommunityData(target.community.get_secret_value(), mpModel=1)
        try:
            transport = await UdpTransportTarget.create((target.host, target.port), timeout=target.timeout_s, retries=target.retries)
        except Exception as exc:  # name resolution
            raise SnmpError(f"{name}: cannot resolve host: {exc}") from None
        fast = None
        if target.version != "3" and self.fast_v2c:
            addr = transport.transport_address[:2]
            fast = (addr, target.community.get_secret_value().encode(), float(target.timeout_s), int(target.retries))
        return Session(name, auth, transport, fast)

    async def _request(self, s: Session, kind: str, oids, non_repeaters: int = 0, reps: int = 0):
        """(error_status, error_index, [(oid, python value or None)]) of one GET or GETBULK."""
        if s.fast is not None:
            from dcops.collectors.snmp_ber import END_OF_MIB, GET, GETBULK
            from dcops.collectors.snmp_fastv2c import V2cError, V2cTimeout

            addr, community, timeout, retries = s.fast
            try:
                status, index, vbs = await self._v2c.request(addr, community, GETBULK if kind == "bulk" else GET, oids,
                                                             non_repeaters=non_repeaters, max_repetitions=reps,
                                                             timeout=timeout, retries=retries)
            except V2cTimeout:
                raise SnmpTimeout(f"{s.name}: no answer (timed out; agent down or unreachable, or a wrong community "
                                  f"looks the same for SNMPv2c)") from None
            except V2cError as exc:
                raise SnmpError(f"{s.name}: {exc}") from None
            except OSError as exc:
                raise SnmpError(f"{s.name}: {exc}") from None
            return status, index, [(o, None if v is END_OF_MIB else v) for o, v in vbs]
        if kind == "bulk":
            res = await bulk_cmd(self._engine, s.auth, s.transport, self._ctx, non_repeaters, reps,
                                 *[self._oid(o) for o in oids], lookupMib=False)
        else:
            res = await get_cmd(self._engine, s.auth, s.transport, self._ctx, *[self._oid(o) for o in oids], lookupMib=False)
        self._check(s, res[0], 0, 0, res[3])
        return int(res[1] or 0), int(res[2] or 0), [(str(n), to_python(v)) for n, v in res[3]]

    def _status(self, s: Session, status: int, index: int, vbs) -> None:
        if status:
            where = f" at {vbs[index - 1][0]}" if 0 < index <= len(vbs) else ""
            what = _ERROR_STATUS[status] if 0 <= status < len(_ERROR_STATUS) else f"error-status {status}"
            raise SnmpError(f"{s.name}: agent answered {what}{where}")

    def prepare(self, sessions: list[Session]) -> None:
        """Register many targets with the engine up front, before any traffic.

        pysnmp registers each target in its local configuration tables on first use, and every
        registration invalidates the community-to-security-name cache it rebuilds (scanning
        all targets) on the next answer: first-contacting 1,000 agents while answers arrive
        costs O(n^2) (~40 s for 1,000). Registering them all first costs one rebuild.
        """
        for s in sessions:
            if s.fast is None:  # the light v2c path keeps no per-target state in pysnmp
                LCD.configure(self._engine, s.auth, s.transport, self._ctx.contextName)

    def _check(self, s: Session, err_ind, err_status, err_index, var_binds) -> None:
        if err_ind:
            for cls, text in _AUTH_ERRORS.items():
                if isinstance(err_ind, cls):
                    raise SnmpAuthError(f"{s.name}: {text} ({err_ind})")
            if isinstance(err_ind, errind.RequestTimedOut):
                hint = ("wrong privacy key/protocol looks the same for SNMPv3" if isinstance(s.auth, UsmUserData)
                        else "a wrong community looks the same for SNMPv2c")
                raise SnmpTimeout(f"{s.name}: no answer (timed out; agent down or unreachable, or {hint})")
            raise SnmpError(f"{s.name}: {err_ind}")
        if err_status and int(err_status):
            where = ""
            if err_index and int(err_index) and int(err_index) <= len(var_binds):
                where = f" at {var_binds[int(err_index) - 1][0]}"
            raise SnmpError(f"{s.name}: agent answered {err_status.prettyPrint()}{where}")

    async def get(self, s: Session, oids: list[str] | tuple[str, ...], chunk: int = 64) -> dict[str, object]:
        """GET the instances; absent ones are left out. Halves the request on tooBig."""
        out: dict[str, object] = {}
        i = 0
        while i < len(oids):
            part = list(oids[i:i + chunk])
            status, index, vbs = await self._request(s, "get", part)
            if status == 1 and chunk > 1:  # tooBig(1): ask for less
                chunk //= 2
                continue
            self._status(s, status, index, vbs)
            i += len(part)
            for name, v in vbs:
                if v is not None:
                    out[name] = v
        return out

    async def walk(self, s: Session, roots: list[str] | tuple[str, ...], max_repetitions: int = 25,
                   max_varbinds: int = 64, max_rounds: int = 500,
                   scalars: list[str] | tuple[str, ...] = (), fixed_reps: int | None = None,
                   ) -> tuple[dict[str, dict[str, object]], list[str], dict[str, object]]:
        """Walk table columns with GETBULK: ({root: {suffix: value}}, problems, scalars got).

        `scalars` ending in `.0` ride along in the first request as non-repeaters (a GETNEXT of
        their parent returns exactly them), so a typical device costs one round trip.
        `fixed_reps`: one request of exactly that many rows per column (when the row count is
        known from an earlier walk); columns are not followed further.
        """
        got: dict[str, object] = {}
        riders = [o for o in scalars if o.endswith(".0")][:60]
        rest = [o for o in scalars if not o.endswith(".0")][:]
        result: dict[str, dict[str, object]] = {r: {} for r in roots}
        cursor = {r: r for r in roots}
        last = {r: tuple(int(x) for x in r.split(".")) for r in roots}
        active = list(roots)
        problems: list[str] = []
        rounds = 0
        while active:
            rounds += 1
            if rounds > max_rounds:
                problems.append(f"{s.name}: walk stopped after {max_rounds} requests")
                break
            reps = fixed_reps or max(2, min(max_repetitions, max_varbinds // len(active)))
            lead = riders if rounds == 1 else []
            status, index, var_binds = await self._request(s, "bulk", [o[:-2] for o in lead] + [cursor[r] for r in active],
                                                           len(lead), reps)
            self._status(s, status, index, var_binds)
            for want, (name, v) in zip(lead, var_binds[:len(lead)]):
                if name == want and v is not None:
                    got[want] = v
            var_binds = var_binds[len(lead):]
            if not var_binds:
                break
            n = len(active)
            done: set[str] = set()
            for k, (o, v) in enumerate(var_binds):
                r = active[k % n]
                if r in done:
                    continue
                if v is None or not o.startswith(r + "."):
                    done.add(r)
                    continue
                t = tuple(int(x) for x in o.split("."))
                if t <= last[r]:
                    problems.append(f"{s.name}: agent returned non-increasing OID {o} after {cursor[r]}")
                    done.add(r)
                    continue
                last[r] = t
                cursor[r] = o
                result[r][o[len(r) + 1:]] = v
            # an answer cut short to fit the agent's message size leaves some columns without
            # a varbind this round: they stay open and continue from their cursor next round
            active = [r for r in active if r not in done]
            if fixed_reps:
                break
        if rest or (riders and not roots):
            got.update(await self.get(s, rest + (riders if not roots else [])))
        return result, problems, got

    async def probe(self, s: Session, roots: list[str] | tuple[str, ...], chunk: int = 24) -> frozenset[str]:
        """Which of `roots` have anything under them (one GETNEXT per root, `chunk` per GETBULK
        so the answer fits a small agent's message size; a tooBig answer halves the chunk)."""
        found = set()
        i = 0
        while i < len(roots):
            part = list(roots[i:i + chunk])
            status, index, vbs = await self._request(s, "bulk", part, len(part), 1)
            if status == 1 and chunk > 1:  # tooBig(1)
                chunk //= 2
                continue
            self._status(s, status, index, vbs)
            for r, (name, v) in zip(part, vbs):
                if v is not None and name.startswith(r + "."):
                    found.add(r)
            i += len(part)
        return frozenset(found)


class NotificationListener:
    """Receives SNMP v1/v2c traps and v2c/v3 traps and informs on a UDP address.

    `on_notification(sender, var_binds)` gets the sender's "host:port" and [(oid, value)] with
    plain Python values (snmpTrapOID.0 included). SNMPv3 users are registered for informs
    (this engine authoritative) and, for traps, for each sender engine ID given.
    Call `start()` inside a running asyncio loop; `close()` stops listening.
    """

    def __init__(self, host: str, port: int, communities: tuple[str, ...], users, on_notification) -> None:
        self.host, self.port = host, port
        self.communities = communities
        self.users = users  # (user, auth_protocol, auth_key, priv_protocol, priv_key, engine_ids)
        self.on_notification = on_notification
        self._engine: SnmpEngine | None = None

    def start(self) -> None:
        from pysnmp.carrier.asyncio.dgram import udp
        from pysnmp.entity import config
        from pysnmp.entity.rfc3413 import ntfrcv

        eng = SnmpEngine()
        config.add_transport(eng, udp.DOMAIN_NAME, udp.UdpAsyncioTransport().open_server_mode((self.host, self.port)))
        for i, community in enumerate(self.communities):
            config.add_v1_system(eng, f"dcops-area-{i}", community)
        for user, auth_p, auth_k, priv_p, priv_k, engine_ids in self.users:
            kw = dict(authProtocol=AUTH_PROTOCOLS[auth_p] if auth_k else USM_AUTH_NONE, authKey=auth_k or None,
                      privProtocol=PRIV_PROTOCOLS[priv_p] if priv_k else USM_PRIV_NONE, privKey=priv_k or None)
            config.add_v3_user(eng, user, **kw)
            for eid in engine_ids:
                config.add_v3_user(eng, user, securityEngineId=OctetString(hexValue=eid.lower().removeprefix("0x")), **kw)

        def cb(snmp_engine, state_ref, ctx_engine_id, ctx_name, var_binds, cb_ctx):
            try:
                addr = snmp_engine.message_dispatcher.get_transport_info(state_ref)[1]
                sender = f"{addr[0]}:{addr[1]}"
            except Exception:
                sender = "?"
            self.on_notification(sender, [(str(name), to_python(value)) for name, value in var_binds])

        ntfrcv.NotificationReceiver(eng, cb)
        eng.transport_dispatcher.job_started(1)
        self._engine = eng

    def close(self) -> None:
        if self._engine is not None:
            self._engine.transport_dispatcher.job_finished(1)
            self._engine.close_dispatcher()
            self._engine = None
