"""Site configuration: halls, rows, racks, devices, the power chain and cooling zones.

Validated once at the edge into frozen pydantic models; `load_site(path)` raises
`ConfigError` naming file, line and field for every problem, including cross-references
(a rack fed from a PDU that does not exist, a cooling zone naming an unknown row).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from dcops.secrets import Secret
from dcops.settings import Settings
from dcops.yamlconf import ConfigError, ConfigProblem, parse_yaml, read_config_text, validate_with_lines

__all__ = [
    "Accelerators", "CoolingUnit", "CoolingZone", "EnvSensor", "Hall", "Pdu", "Rack", "Row",
    "Server", "SiteConfig", "SnmpTarget", "Ups", "load_site", "site_from_text", "BmcConfig"]

Name = str
FeedName = Literal["A", "B"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)  # inputs may be secrets


class SnmpTarget(_Model):
    """How to reach a device's SNMP agent. Secrets are SecretStr: never printed or logged."""

    host: str = "127.0.0.1"
    port: int = Field(161, ge=1, le=65535)
    version: Literal["2c", "3"] = "2c"
    community: Secret = SecretStr("public")
    user: str | None = None
    auth_protocol: Literal["SHA", "SHA256", "SHA512", "MD5", "none"] = "SHA256"
    auth_key: Secret | None = None
    priv_protocol: Literal["AES128", "AES256", "DES", "none"] = "AES128"
    priv_key: Secret | None = None
    profile: str = "auto"
    interval_s: float = Field(30.0, gt=0)
    timeout_s: float = Field(2.0, gt=0)
    retries: int = Field(1, ge=0, le=10)


class BmcConfig(_Model):
    """How to reach a server's BMC over Redfish. `url` may say `{server}` (templates); the password
    is a secret (never printed); TLS is verified unless `verify: false` says otherwise."""

    url: str = Field(pattern=r"^https?://", description="e.g. https://{server}-bmc.mgmt.example")
    username: str | None = None
    password: Secret | None = None  # a literal, env:NAME or file:PATH
    ca_file: str | None = Field(None, description="CA bundle that signed this BMC's certificate")
    verify: bool = True
    auth: Literal["session", "basic", "none"] = "session"
    interval_s: float = Field(60.0, gt=0)
    timeout_s: float = Field(10.0, gt=0)
    psu_feeds: dict[str, FeedName] = Field(default_factory=dict,
                                           description="Redfish PSU bay id -> feed, e.g. {Bay1: A, Bay2: B}; "
                                                       "default: bays in order on the server's psus")


class Accelerators(_Model):
    vendor: Literal["nvidia", "rebellions", "amd", "intel", "other"]
    model: str = Field(min_length=1)
    count: int = Field(ge=1, le=64)
    tdp_w: float = Field(700.0, gt=0, le=5000)
    dies_per_card: int = Field(1, ge=1, le=8)
    memory_bytes: int = Field(80 * 2**30, gt=0)


class Server(_Model):
    name: Name = Field(min_length=1)
    kind: Literal["gpu_server", "npu_server", "cpu_server"] = "gpu_server"
    accelerators: Accelerators | None = None
    psus: tuple[FeedName, ...] = ("A", "B")
    idle_w: float = Field(800.0, ge=0)
    agent: str | None = None  # host:port of the accelerator agent, when polled remotely
    bmc: BmcConfig | None = None  # the server's BMC (Redfish): PSUs, fans, temperatures, coolant, logs


class EnvSensor(_Model):
    name: Name = Field(min_length=1)
    position: Literal["inlet", "outlet", "room"] = "inlet"
    snmp: SnmpTarget | None = None


class RackPdu(_Model):
    name: Name = Field(min_length=1)
    feed: FeedName
    model: str = "generic"
    snmp: SnmpTarget | None = None


class Rack(_Model):
    name: Name = Field(min_length=1)
    template: str | None = None
    servers: tuple[Server, ...] = ()
    feeds: dict[FeedName, Name] = Field(default_factory=dict)
    rack_pdus: tuple[RackPdu, ...] = ()
    sensors: tuple[EnvSensor, ...] = ()
    position: int | None = None


class Row(_Model):
    name: Name = Field(min_length=1)
    racks: tuple[Rack, ...] = Field(min_length=1)


class Ups(_Model):
    name: Name = Field(min_length=1)
    capacity_kw: float = Field(gt=0)
    battery_runtime_s: float = Field(600.0, gt=0)
    model: str = "generic"
    snmp: SnmpTarget | None = None


class Pdu(_Model):
    """A floor PDU / remote power panel: fed from a UPS, feeds rack circuits."""

    name: Name = Field(min_length=1)
    ups: Name
    capacity_kw: float = Field(gt=0)
    model: str = "generic"
    snmp: SnmpTarget | None = None


class CoolingUnit(_Model):
    name: Name = Field(min_length=1)
    kind: Literal["crac", "crah", "inrow", "cdu"] = "crac"
    capacity_kw: float = Field(gt=0)
    setpoint_degc: float = Field(18.0, ge=5, le=35)
    model: str = "generic"
    snmp: SnmpTarget | None = None


class CoolingZone(_Model):
    name: Name = Field(min_length=1)
    units: tuple[Name, ...] = Field(min_length=1)
    rows: tuple[Name, ...] = Field(min_length=1)
    redundancy: int = Field(1, ge=0, description="Units that may fail with capacity still sufficient (N+redundancy).")


class Hall(_Model):
    name: Name = Field(min_length=1)
    upses: tuple[Ups, ...] = ()
    pdus: tuple[Pdu, ...] = ()
    cooling_units: tuple[CoolingUnit, ...] = ()
    cooling_zones: tuple[CoolingZone, ...] = ()
    rows: tuple[Row, ...] = Field(min_length=1)
    sensors: tuple[EnvSensor, ...] = ()


class SiteConfig(_Model):
    site: Name = Field(min_length=1)
    timezone: str = "UTC"
    energy_price_per_kwh: float = Field(0.12, ge=0)
    templates: dict[str, tuple[Server, ...]] = Field(default_factory=dict)
    halls: tuple[Hall, ...] = Field(min_length=1)
    settings: Settings = Field(default_factory=Settings)

    @field_validator("site")
    @classmethod
    def _no_slash(cls, v: str) -> str:
        if "/" in v:
            raise ValueError("names may not contain '/'")
        return v

    def servers_of(self, rack: Rack) -> tuple[Server, ...]:
        """A rack's servers: its template's (names prefixed by the rack) plus its own."""
        out = []
        if rack.template:
            for s in self.templates[rack.template]:
                out.append(s.model_copy(update={"name": f"{rack.name}-{s.name}"}))
        out.extend(rack.servers)
        return tuple(out)


def _cross_check(cfg: SiteConfig) -> list[tuple[tuple, str]]:
    """Reference and uniqueness checks pydantic cannot express; returns (data path, message)."""
    problems: list[tuple[tuple, str]] = []
    seen: dict[str, tuple] = {}

    def claim(name: str, path: tuple) -> None:
        if "/" in name:
            problems.append((path + ("name",), "names may not contain '/'"))
        if name in seen:
            problems.append((path + ("name",), f"name {name!r} is used twice (also at {_fmt(seen[name])})"))
        else:
            seen[name] = path

    # a PDU may be fed from a UPS in another hall (one UPS system feeding two halls)
    ups_names = {u.name for hall in cfg.halls for u in hall.upses}
    for hi, hall in enumerate(cfg.halls):
        hp = ("halls", hi)
        claim(hall.name, hp)
        pdu_names = {p.name for p in hall.pdus}
        unit_names = {c.name for c in hall.cooling_units}
        row_names = {r.name for r in hall.rows}
        for i, u in enumerate(hall.upses):
            claim(u.name, hp + ("upses", i))
        for i, p in enumerate(hall.pdus):
            claim(p.name, hp + ("pdus", i))
            if p.ups not in ups_names:
                problems.append((hp + ("pdus", i, "ups"), f"unknown UPS {p.ups!r} (the site has {sorted(ups_names)})"))
        for i, c in enumerate(hall.cooling_units):
            claim(c.name, hp + ("cooling_units", i))
        zoned_rows: dict[str, str] = {}
        for zi, z in enumerate(hall.cooling_zones):
            claim(z.name, hp + ("cooling_zones", zi))
            for ui, u in enumerate(z.units):
                if u not in unit_names:
                    problems.append((hp + ("cooling_zones", zi, "units", ui), f"unknown cooling unit {u!r}"))
            for ri, r in enumerate(z.rows):
                if r not in row_names:
                    problems.append((hp + ("cooling_zones", zi, "rows", ri), f"unknown row {r!r}"))
                elif r in zoned_rows:
                    problems.append((hp + ("cooling_zones", zi, "rows", ri), f"row {r!r} is already in zone {zoned_rows[r]!r}"))
                else:
                    zoned_rows[r] = z.name
            if z.redundancy >= len(z.units):
                problems.append((hp + ("cooling_zones", zi, "redundancy"), f"redundancy {z.redundancy} needs more than {len(z.units)} units"))
        for i, s in enumerate(hall.sensors):
            claim(s.name, hp + ("sensors", i))
        for ri, row in enumerate(hall.rows):
            rp = hp + ("rows", ri)
            claim(row.name, rp)
            if hall.cooling_zones and row.name not in zoned_rows:
                problems.append((rp + ("name",), f"row {row.name!r} is in no cooling zone"))
            for ki, rack in enumerate(row.racks):
                kp = rp + ("racks", ki)
                claim(rack.name, kp)
                if rack.template is not None and rack.template not in cfg.templates:
                    problems.append((kp + ("template",), f"unknown template {rack.template!r} (have {sorted(cfg.templates)})"))
                    continue
                for feed, pdu in rack.feeds.items():
                    if pdu not in pdu_names:
                        problems.append((kp + ("feeds", feed), f"unknown PDU {pdu!r} (hall {hall.name} has {sorted(pdu_names)})"))
                for pi, rp_ in enumerate(rack.rack_pdus):
                    claim(rp_.name, kp + ("rack_pdus", pi))
                    if rp_.feed not in rack.feeds:
                        problems.append((kp + ("rack_pdus", pi, "feed"), f"feed {rp_.feed} is not one of this rack's feeds {sorted(rack.feeds)}"))
                for si, sen in enumerate(rack.sensors):
                    claim(sen.name, kp + ("sensors", si))
                servers = cfg.servers_of(rack)
                if not servers:
                    problems.append((kp, "rack has no servers (give a template or servers)"))
                for si, srv in enumerate(servers):
                    sp = kp + ("servers", si - (len(servers) - len(rack.servers))) if si >= len(servers) - len(rack.servers) else kp + ("template",)
                    claim(srv.name, sp)
                    for feed in srv.psus:
                        if feed not in rack.feeds:
                            problems.append((sp, f"server {srv.name} has a PSU on feed {feed} but the rack has feeds {sorted(rack.feeds)}"))
                    if srv.kind in ("gpu_server", "npu_server") and srv.accelerators is None:
                        problems.append((sp, f"{srv.kind} {srv.name} lists no accelerators"))
    return problems


def _fmt(path: tuple) -> str:
    return ".".join(str(p) for p in path)


def _load(text: str, file: str) -> SiteConfig:
    data, lines = parse_yaml(text, file)
    if data is None:
        raise ConfigError([ConfigProblem(file, None, "", "file is empty")])
    cfg = validate_with_lines(SiteConfig, data, lines, file)
    problems = _cross_check(cfg)
    if problems:
        out = []
        for path, msg in problems:
            line = None
            p = path
            while p:
                if p in lines:
                    line = lines[p]
                    break
                p = p[:-1]
            out.append(ConfigProblem(file, line, _fmt(path), msg))
        raise ConfigError(out)
    return cfg


def load_site(path: str | Path) -> SiteConfig:
    p = Path(path)
    text = read_config_text(p)
    return _load(text, str(p))


def site_from_text(text: str, file: str = "<string>") -> SiteConfig:
    return _load(text, file)
