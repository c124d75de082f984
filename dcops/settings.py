"""Service settings: which implementation each seam uses and how to reach it.

Embedded defaults need nothing installed: the in-process bus, a DuckDB file, SQLite. The
production choices (Kafka, InfluxDB, PostgreSQL) are picked per seam in the `settings:`
section of the site YAML.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from dcops.secrets import Secret, SecretText

__all__ = ["AgentSettings", "RedfishSettings", "BusSettings", "StoreSettings", "DatabaseSettings", "ConsoleSettings", "MetricsSettings",
           "Settings"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)  # inputs may be secrets


# Secrets: a literal, `env:NAME` (or NAME_FILE) or `file:PATH`, resolved by dcops.secrets.
EnvSecret = Secret      # names kept for code that imports them
EnvStr = SecretText


class BusSettings(_Model):
    kind: Literal["inprocess", "kafka"] = "inprocess"
    bootstrap_servers: tuple[str, ...] = ("127.0.0.1:9092",)
    topic_prefix: str = "dcops."
    partitions: int = Field(12, ge=1)
    replication_factor: int = Field(1, ge=1)
    spool_dir: str = "var/spool"
    spool_max_bytes: int = Field(1 << 30, gt=0)
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: SecretText | None = None
    sasl_password: EnvSecret | None = None


class StoreSettings(_Model):
    kind: Literal["duckdb", "influxdb"] = "duckdb"
    path: str = "var/dcops.duckdb"
    url: SecretText = "http://127.0.0.1:8086"  # user:password@ in it is masked in every log line
    org: str = "dcops"
    bucket: str = "dcops"
    token: EnvSecret | None = None
    retention_days: float = Field(7.0, gt=0)
    # InfluxDB 1.x: create the database, retention policies and rollup continuous queries at start.
    # 2.x/3.x: false; buckets, DBRP mappings and downsampling are provisioned outside (docker/influxdb/).
    manage_schema: bool = True


class DatabaseSettings(_Model):
    url: EnvStr = "sqlite:///var/dcops.sqlite"  # may hold a password: `env:DCOPS_DATABASE_URL` or `file:/run/secrets/db_url`
    # HMAC key of the audit chain, never stored in the database (`env:DCOPS_AUDIT_KEY`); without
    # it the chain is plain SHA-256 and only the anchors detect a privileged editor.
    audit_key: EnvSecret | None = None
    # chain heads written outside the database; default: beside a SQLite file, else var/audit-anchors.jsonl
    audit_anchor_file: str | None = None
    audit_anchor_interval_s: float = Field(300.0, gt=0)


class ConsoleSettings(_Model):
    host: str = "127.0.0.1"
    port: int = Field(8050, ge=1, le=65535)
    refresh_s: float = Field(5.0, gt=0)
    session_ttl_s: int = Field(8 * 3600, gt=0)
    cookie_secure: bool = Field(False, description="mark session cookies Secure (set when served behind TLS)")


class TrapUserSettings(_Model):
    """An SNMPv3 user whose traps and informs are accepted (keys may be `env:NAME`)."""

    user: str = Field(min_length=1)
    auth_protocol: Literal["SHA", "SHA256", "SHA512", "MD5"] = "SHA256"
    auth_key: EnvSecret
    priv_protocol: Literal["AES128", "AES256", "DES"] = "AES128"
    priv_key: EnvSecret
    engine_ids: tuple[str, ...] = Field((), description="trap senders' engine IDs (hex); informs need none")


class TrapSettings(_Model):
    """The `traps` role: where to listen and whom to believe (v2c communities, v3 users)."""

    host: str = "0.0.0.0"
    port: int = Field(162, ge=1, le=65535)
    communities: tuple[EnvSecret, ...] = (SecretStr("public"),)
    users: tuple[TrapUserSettings, ...] = ()


class MetricsSettings(_Model):
    """Each role process serves /metrics and /healthz here (`dcops up` gives its children port, port+1, ...)."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(9850, ge=0, le=65535, description="0: any free port")


class AgentSettings(_Model):
    """The `agent` role's power-limit control API: served only when a key is set (never open).
    Runbook actions sign their requests with the same key (`agent_token_key` of the executors)."""

    control_host: str = "0.0.0.0"
    control_port: int = Field(9101, ge=1, le=65535)
    control_key: EnvSecret | None = None
    control_audit: str = "var/agent-power-audit.jsonl"


class RedfishSettings(_Model):
    """The `redfish` role: where BMCs push their events (empty events_url: poll only) and where
    the log cursors are kept (so a restart repeats no log entry)."""

    events_url: str = Field("", description="URL the BMCs can reach this role at, e.g. https://dcops.mgmt:8443")
    events_host: str = "0.0.0.0"
    events_port: int = Field(8443, ge=1, le=65535)
    state_path: str = "var/redfish-cursors.json"


class Settings(_Model):
    interval_s: float = Field(10.0, gt=0, description="Telemetry sample interval.")
    bus: BusSettings = Field(default_factory=BusSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    traps: TrapSettings = Field(default_factory=TrapSettings)
    agent: AgentSettings = Field(default_factory=AgentSettings)
    redfish: RedfishSettings = Field(default_factory=RedfishSettings)
    roles: tuple[Literal["poller", "traps", "agent", "redfish", "ingest", "analytics", "alerter", "console"], ...] = (
        "poller", "ingest", "analytics", "alerter", "console")
