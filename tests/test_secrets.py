"""`env:NAME` / `NAME_FILE` / `file:PATH` secrets in every config file, errors that name file,
line and field, and secrets that never reach a log line at any level (httpx included)."""

from __future__ import annotations

import io
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from dcops.alerts.config import alerting_from_text
from dcops.alerts.notification.notifiers.slack import SlackConfig, SlackNotifier
from dcops.alerts.notification.notifiers.webhook import WebhookConfig, WebhookNotifier
from dcops.cli import configure_logging
from dcops.secrets import SecretRefError, redact, resolve
from dcops.site import site_from_text
from dcops.yamlconf import ConfigError
from tests.alerts.helpers import Receiver
from tests.alerts.service_receivers import ServiceReceiver
from tests.alerts.test_notifiers import MSG
from tests.conftest import SMALL_SITE

REPO = Path(__file__).resolve().parents[1]


def test_resolver_forms(tmp_path, monkeypatch):
    monkeypatch.setenv("DCOPS_T_A", "alpha-secret")
    (tmp_path / "b").write_text("bravo-secret\n")
    monkeypatch.setenv("DCOPS_T_B_FILE", str(tmp_path / "b"))
    assert resolve("env:DCOPS_T_A") == "alpha-secret"
    assert resolve("env:DCOPS_T_B") == "bravo-secret"            # Compose/Kubernetes *_FILE convention
    assert resolve(f"file:{tmp_path}/b") == "bravo-secret"       # one trailing newline dropped
    assert resolve("plain") == "plain"
    with pytest.raises(SecretRefError, match=r"DCOPS_T_C is not set \(nor DCOPS_T_C_FILE\)"):
        resolve("env:DCOPS_T_C")
    with pytest.raises(SecretRefError, match="does not exist"):
        resolve(f"file:{tmp_path}/missing")
    (tmp_path / "empty").write_text("")
    with pytest.raises(SecretRefError, match="is empty"):
        resolve(f"file:{tmp_path}/empty")
    with pytest.raises(SecretRefError, match="variable name"):
        resolve("env:")


ALERTING = """receivers:
  - {name: hook, type: webhook, url: "https://noc.example/hook", secret: "file:%(dir)s/hook_key"}
  - {name: pd, type: pagerduty, routing_key: "env:DCOPS_T_PD_KEY"}
  - {name: chat, type: slack, url: "env:DCOPS_T_SLACK"}
  - {name: mail, type: email, host: smtp.example.net, tls: starttls, sender: a@example.net, to: [b@example.net], username: dcops, password: "env:DCOPS_T_SMTP"}
route: {receiver: hook}
inbound: {token: "env:DCOPS_T_AM_TOKEN"}
"""


def test_alerting_config_resolves_every_receiver_secret(tmp_path, monkeypatch):
    (tmp_path / "hook_key").write_text("whsec_" + "QUJD" * 8)
    for k, v in {"DCOPS_T_PD_KEY": "pdkey-0123456789abcdef0123456789", "DCOPS_T_SLACK": "https://hooks.slack.com/services/T/B/x",
                 "DCOPS_T_SMTP": "smtp-password", "DCOPS_T_AM_TOKEN": "am-token-123"}.items():
        monkeypatch.setenv(k, v)
    cfg = alerting_from_text(ALERTING % {"dir": tmp_path}, "alerting.yaml")
    assert cfg.receiver("pd").routing_key.get_secret_value() == "pdkey-0123456789abcdef0123456789"
    assert cfg.receiver("hook").secret.get_secret_value().startswith("whsec_")
    assert cfg.inbound.token.get_secret_value() == "am-token-123"
    assert "pdkey" not in repr(cfg) and "smtp-password" not in repr(cfg)


def test_missing_secret_names_file_line_and_field(tmp_path, monkeypatch):
    (tmp_path / "hook_key").write_text("k3y-value")
    monkeypatch.delenv("DCOPS_T_PD_KEY", raising=False)
    for k in ("DCOPS_T_SLACK", "DCOPS_T_SMTP", "DCOPS_T_AM_TOKEN"):
        monkeypatch.setenv(k, "https://x.example/" if k == "DCOPS_T_SLACK" else "v4lue")
    path = tmp_path / "alerting.yaml"
    path.write_text(ALERTING % {"dir": tmp_path})
    with pytest.raises(ConfigError) as exc:
        alerting_from_text(path.read_text(), str(path))
    (p,) = exc.value.problems
    assert (p.file, p.line, p.field) == (str(path), 3, "receivers.1.routing_key")
    assert "DCOPS_T_PD_KEY is not set" in p.message
    # the CLI says the same and fails (it used to say OK and send "env:PD_KEY" literally)
    env = {k: v for k, v in os.environ.items() if k != "DCOPS_T_PD_KEY"}
    r = subprocess.run([sys.executable, "-m", "dcops.cli", "rules", "alerting", str(path)], capture_output=True,
                       text=True, env=env, cwd=REPO, timeout=60)
    assert r.returncode == 1 and "receivers.1.routing_key" in r.stderr + r.stdout and ":3" in r.stderr + r.stdout
    env["DCOPS_T_PD_KEY"] = "pdkey-value-abcdef"
    r = subprocess.run([sys.executable, "-m", "dcops.cli", "-vv", "rules", "alerting", str(path)], capture_output=True,
                       text=True, env=env, cwd=REPO, timeout=60)
    assert r.returncode == 0 and "OK: 4 receivers" in r.stdout
    assert all(s not in r.stdout + r.stderr for s in ("pdkey-value-abcdef", "k3y-value", "v4lue"))


def test_site_settings_and_snmp_v3_take_references(tmp_path, monkeypatch):
    (tmp_path / "priv").write_text("snmp-priv-key\n")
    monkeypatch.setenv("DCOPS_T_AUTH", "snmp-auth-key")
    monkeypatch.setenv("DCOPS_T_DB", "postgresql+psycopg://dcops:dbpass@db/dcops")
    monkeypatch.setenv("DCOPS_T_INFLUX_TOKEN", "influx-token-1")
    text = SMALL_SITE.read_text().replace(
        "- {name: UPS-A, capacity_kw: 200, battery_runtime_s: 600}",
        "- {name: UPS-A, capacity_kw: 200, battery_runtime_s: 600, snmp: {host: 10.0.0.9, version: '3', user: ups, "
        f"auth_key: 'env:DCOPS_T_AUTH', priv_key: 'file:{tmp_path}/priv'}}}}")
    text += ("settings:\n  store: {kind: influxdb, url: 'http://admin:influxpw@influx:8086', token: 'env:DCOPS_T_INFLUX_TOKEN'}\n"
             "  database: {url: 'env:DCOPS_T_DB'}\n")
    cfg = site_from_text(text, "site.yaml")
    ups = next(u for h in cfg.halls for u in h.upses if u.name == "UPS-A")
    assert ups.snmp.auth_key.get_secret_value() == "snmp-auth-key" and ups.snmp.priv_key.get_secret_value() == "snmp-priv-key"
    assert cfg.settings.database.url.endswith("dbpass@db/dcops")
    assert cfg.settings.store.token.get_secret_value() == "influx-token-1"
    for s in ("snmp-auth-key", "snmp-priv-key", "dbpass", "influxpw", "influx-token-1"):
        assert s not in redact(f"connecting with {s} to {cfg.settings.database.url} {cfg.settings.store.url}")
    monkeypatch.delenv("DCOPS_T_AUTH")
    with pytest.raises(ConfigError) as exc:
        site_from_text(text, "site.yaml")
    (p,) = exc.value.problems
    assert p.file == "site.yaml" and p.line == 15 and p.field.endswith("snmp.auth_key") and "DCOPS_T_AUTH" in p.message


@pytest.mark.parametrize("verbose", [0, 1, 2])
def test_planted_secrets_never_reach_the_log(verbose, tmp_path, monkeypatch):
    """Deliveries (ok and failing) and an unreachable InfluxDB, logged as `dcops -v...` logs them."""
    slack = ServiceReceiver("slack")
    hook = Receiver(secret=b"hook-signing-key-1")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    monkeypatch.setenv("DCOPS_T_SLACK_URL", slack.url)
    planted = ["s3cr3tWebhookToken", "hook-signing-key-1", "url-token-777", "hookpass", "influxpw", "dead-token-42"]
    out = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    configure_logging(verbose, stream=out, force=True)
    try:
        with httpx.Client() as client:
            assert SlackNotifier(SlackConfig(url="env:DCOPS_T_SLACK_URL"), client).send(MSG, "k1").ok
            hook_url = hook.url.replace("http://", "http://noc:hookpass@") + "?token=url-token-777"
            assert WebhookNotifier(WebhookConfig(url=hook_url, secret="hook-signing-key-1"), client).send(MSG, "k2").ok
            res = WebhookNotifier(WebhookConfig(url=f"http://u:dead-token-42@127.0.0.1:{dead}/h?api_key=dead-token-42",
                                                timeout_s=1), client).send(MSG, "k3")
            assert not res.ok
            logging.getLogger("dcops.test").error("delivery failed: %s", res.error)
        from dcops.store.base import StoreUnavailable
        from dcops.store.influx_store import InfluxStore

        store = InfluxStore(f"http://admin:influxpw@127.0.0.1:{dead}", manage_schema=False, timeout_s=1, max_retries=0)
        try:
            store.query_range("ups", ["load_w"], 0, 1)
        except StoreUnavailable as exc:
            assert "influxpw" not in str(exc)
            logging.getLogger("dcops.ingest").exception("store unreachable: %s", exc)
        except Exception as exc:  # any other error text must be masked as well
            logging.getLogger("dcops.ingest").exception("store error: %s", exc)
        finally:
            store.close()
    finally:
        for h in root.handlers[:]:
            root.removeHandler(h)
        for h in saved[0]:
            root.addHandler(h)
        root.setLevel(saved[1])
        slack.close()
        hook.close()
    text = out.getvalue()
    if verbose >= 1:
        assert "HTTP Request: POST" in text            # httpx did log the requests, masked
    assert "store" in text and "delivery failed" in text
    leaked = [s for s in planted if s in text]
    assert leaked == [], text


@pytest.mark.parametrize("verbosity", [[], ["-vv"]])
def test_unreachable_influxdb_credentials_stay_out_of_role_output(tmp_path, verbosity):
    """Issue 20 #8: `dcops role ingest` with `user:password@` in the InfluxDB URL and the store down."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    site = tmp_path / "site.yaml"
    site.write_text(SMALL_SITE.read_text() + "\nsettings:\n  store: {kind: influxdb, "
                    f"url: 'http://admin:InfluxPw99@127.0.0.1:{port}'}}\n  metrics: {{port: 0}}\n")
    proc = subprocess.Popen([sys.executable, "-m", "dcops.cli", *verbosity, "role", "ingest", "-c", str(site)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    try:
        out, _ = proc.communicate(timeout=8)
    except subprocess.TimeoutExpired:   # a role that waits for its store: stop it and read what it said
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert "InfluxDB" in out or "influx" in out.lower(), out
    assert "InfluxPw99" not in out
