"""SNMP trap and inform receiver: notifications -> dcops events, mapped by `traps.yaml`.

- `load_trap_table()`: the data table (snmpTrapOID -> name, event kind, severity, refinement
  by a detail varbind such as upsAlarmDescr). Validated: kinds must be catalogued.
- `map_notification(table, sender, var_binds, devices, now_ns)`: pure; one `Event`. Unknown
  notifications still become `snmp_trap` events (never dropped) with their varbinds attached.
- `TrapReceiver(cfg, on_events)`: listens (SNMPv1/v2c communities, SNMPv3 users) and hands
  events over; `run_trap_receiver(cfg, bus, stop_event)` publishes them to the bus.
- `receive_forever(cfg, show, count)`: the CLI's `dcops snmp traps`.

Sender attribution: `devices` maps the sender's IP address (or, for agents that share an
address, the sysName.0 the notification carries) to the device tags (site, hall, device, ...);
unknown senders are tagged by address only.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType
from typing import Callable, Mapping

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dcops.batch import Event, Severity
from dcops.catalogue import EVENT_KINDS
from dcops.yamlconf import load_yaml

from dcops.collectors.snmp_profiles import DATA_DIR

__all__ = ["SNMP_TRAP_OID", "SYS_NAME", "SYS_UPTIME", "TrapReceiver", "TrapReceiverConfig", "TrapRule", "TrapUser", "load_trap_table", "map_notification",
           "receive_forever", "run_trap_receiver"]

log = logging.getLogger(__name__)

SNMP_TRAP_OID = "1.3.6.1.6.3.1.1.4.1.0"
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
SYS_NAME = "1.3.6.1.2.1.1.5.0"


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrapDetail(_M):
    name: str
    kind: str
    severity: str

    @field_validator("kind")
    @classmethod
    def _kind(cls, v):
        if v not in EVENT_KINDS:
            raise ValueError(f"event kind {v!r} is not in the catalogue (dcops.catalogue.EVENT_KINDS)")
        return v

    @field_validator("severity")
    @classmethod
    def _sev(cls, v):
        if v not in Severity.ALL:
            raise ValueError(f"severity {v!r} is not one of {Severity.ALL}")
        return v


class TrapRule(TrapDetail):
    oid: str = Field(pattern=r"^[0-9]+(\.[0-9]+)+$")
    detail_oid: str | None = None
    details: dict[str, TrapDetail] = Field(default_factory=dict)


class TrapTable(_M):
    traps: tuple[TrapRule, ...]


@lru_cache(maxsize=4)
def load_trap_table(path: str = str(DATA_DIR / "traps.yaml")) -> Mapping[str, TrapRule]:
    return MappingProxyType({r.oid: r for r in load_yaml(path, TrapTable).traps})


def map_notification(table: Mapping[str, TrapRule], sender: str, var_binds: list[tuple[str, object]],
                     devices: Mapping[str, Mapping[str, str]], now_ns: int, source: str = "snmp_trap") -> Event:
    """One notification -> one event (pure)."""
    vb = dict(var_binds)
    trap_oid = str(vb.get(SNMP_TRAP_OID, "")).lstrip(".")
    host = sender.rsplit(":", 1)[0]
    known = devices.get(host) or devices.get(str(vb.get(SYS_NAME, "")))  # by address, else by sysName.0
    target = {k: str(v) for k, v in (known or {"agent": host}).items()}
    rule = table.get(trap_oid)
    attrs: dict[str, object] = {"trap_oid": trap_oid, "sender": sender}
    others = {k: (v if isinstance(v, (int, float)) else str(v)) for k, v in var_binds if k not in (SNMP_TRAP_OID, SYS_UPTIME)}
    attrs["varbinds"] = dict(list(others.items())[:20])
    if rule is None:
        return Event(now_ns, "snmp_trap", source, target, Severity.INDETERMINATE,
                     f"unmapped SNMP notification {trap_oid or '(no snmpTrapOID)'} from {target.get('device', host)}", attrs)
    hit: TrapDetail = rule
    if rule.detail_oid:
        for k, v in var_binds:
            if k == rule.detail_oid or k.startswith(rule.detail_oid + "."):
                hit = rule.details.get(str(v).lstrip("."), rule)
                break
    attrs["name"] = hit.name
    return Event(now_ns, hit.kind, source, target, hit.severity, f"{hit.name} from {target.get('device', host)}", attrs)


@dataclass(frozen=True)
class TrapUser:
    user: str
    auth_protocol: str = "SHA256"
    auth_key: str = ""
    priv_protocol: str = "AES128"
    priv_key: str = ""
    engine_ids: tuple[str, ...] = ()  # SNMPv3 trap senders' engine IDs (hex); informs need none

    def __repr__(self) -> str:  # never show keys
        return f"TrapUser(user={self.user!r}, auth={self.auth_protocol}, priv={self.priv_protocol}, engine_ids={self.engine_ids})"


@dataclass(frozen=True)
class TrapReceiverConfig:
    host: str = "0.0.0.0"
    port: int = 162
    communities: tuple[str, ...] = ("public",)
    users: tuple[TrapUser, ...] = ()
    devices: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # sender IP -> device tags


class TrapReceiver:
    """Listens for notifications and calls `on_events([event])` for each (in the loop's thread)."""

    def __init__(self, cfg: TrapReceiverConfig, on_events: Callable[[list[Event]], None],
                 clock: Callable[[], int] = time.time_ns, table: Mapping[str, TrapRule] | None = None) -> None:
        from dcops.collectors.snmp_engine import NotificationListener

        self.cfg = cfg
        self.table = table if table is not None else load_trap_table()
        self.on_events = on_events
        self.clock = clock
        self.received = 0
        self._listener = NotificationListener(
            cfg.host, cfg.port, cfg.communities,
            [(u.user, u.auth_protocol, u.auth_key, u.priv_protocol, u.priv_key, u.engine_ids) for u in cfg.users],
            self._handle)

    def _handle(self, sender: str, var_binds: list[tuple[str, object]]) -> None:
        self.received += 1
        try:
            event = map_notification(self.table, sender, var_binds, self.cfg.devices, self.clock())
        except Exception:  # a malformed notification must not stop the receiver
            log.exception("could not map an SNMP notification from %s", sender)
            return
        self.on_events([event])

    def start(self) -> None:
        self._listener.start()
        log.info("SNMP trap receiver listening on %s:%d", self.cfg.host, self.cfg.port)

    def close(self) -> None:
        self._listener.close()


def run_trap_receiver(cfg: TrapReceiverConfig, bus, stop_event: threading.Event) -> None:
    """Blocking: receive notifications and publish them as events until `stop_event` is set."""
    from dcops.bus import publish_events

    async def main() -> None:
        rx = TrapReceiver(cfg, lambda evs: publish_events(bus, evs, key=evs[0].target.get("device", "")))
        rx.start()
        try:
            while not stop_event.is_set():
                await asyncio.sleep(0.2)
        finally:
            rx.close()

    asyncio.run(main())


def receive_forever(cfg: TrapReceiverConfig, show: Callable[[list[Event]], None], count: int = 0) -> int:
    async def main() -> None:
        done = asyncio.Event()
        got = 0

        def on_events(events):
            nonlocal got
            show(events)
            got += len(events)
            if count and got >= count:
                done.set()

        rx = TrapReceiver(cfg, on_events)
        rx.start()
        try:
            await done.wait()
        finally:
            rx.close()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    return 0


def run_role(cfg, stop_event: threading.Event) -> None:
    """The `traps` role: receive the site's traps and informs (settings.traps) until `stop_event`.

    Senders are attributed by the address (and sysName.0) of the devices that have an `snmp:`
    section in the site config, so a trap lands on the same device tags as its polled samples."""
    from dcops.collectors.snmp_poller import targets_from_site
    from dcops.wiring import open_bus

    ts = cfg.settings.traps
    targets = targets_from_site(cfg)
    hosts = [t.snmp.host for t in targets]
    devices: dict[str, dict[str, str]] = {}
    for t in targets:
        tags = {"site": cfg.site, **dict(t.tags)}
        devices[t.name] = tags  # by sysName.0
        if hosts.count(t.snmp.host) == 1:  # by address, unless several devices share it
            devices[t.snmp.host] = tags
    users = tuple(TrapUser(u.user, u.auth_protocol, u.auth_key.get_secret_value(), u.priv_protocol,
                           u.priv_key.get_secret_value(), u.engine_ids) for u in ts.users)
    rx = TrapReceiverConfig(host=ts.host, port=ts.port, communities=tuple(c.get_secret_value() for c in ts.communities),
                            users=users, devices=devices)
    bus = open_bus(cfg.settings.bus, client_id="snmp-traps")
    log.info("traps role: listening on %s:%d (%d communities, %d v3 users, %d known devices)", ts.host, ts.port,
             len(rx.communities), len(users), len(devices))
    try:
        run_trap_receiver(rx, bus, stop_event)
    finally:
        bus.flush()
        bus.close()
