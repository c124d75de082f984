"""E-mail against a real SMTP server (aiosmtpd) on loopback: STARTTLS and implicit TLS with a
verified certificate, AUTH only over TLS, RFC 5322 headers (Date, Message-ID with a domain)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
from email import message_from_bytes
from email.utils import parsedate_to_datetime

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dcops.alerts.notification.notifiers.email import EmailConfig, EmailNotifier
from tests.alerts.test_notifiers import MSG

NOW = 1_795_000_000.0


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A private CA and a server certificate for 127.0.0.1 / localhost, written as PEM files."""
    d = tmp_path_factory.mktemp("pki")
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("dcops test CA")).issuer_name(_name("dcops test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name("localhost")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    (d / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (d / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(d / "cert.pem", d / "key.pem")
    return {"ca": str(d / "ca.pem"), "server_ctx": ctx}


class Inbox:
    def __init__(self, reply: str | None = None):
        self.messages: list[bytes] = []
        self.reply = reply

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd hook name
        if self.reply:
            return self.reply
        self.messages.append(envelope.original_content)
        return "250 Message accepted for delivery"


def _auth(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login == b"dcops" and auth_data.password == b"smtp-pw-123"
    return AuthResult(success=ok)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp_server(pki):
    started = []

    def start(mode: str = "starttls", reply: str | None = None):
        inbox = Inbox(reply)
        kw = {"authenticator": _auth, "auth_require_tls": True}
        if mode == "starttls":
            kw.update(tls_context=pki["server_ctx"], require_starttls=True)
        elif mode == "implicit":  # the whole session is TLS; aiosmtpd 1.4 only counts STARTTLS as TLS for AUTH
            kw.update(ssl_context=pki["server_ctx"], auth_require_tls=False)
        c = Controller(inbox, hostname="127.0.0.1", port=_free_port(), server_hostname="mx.test", **kw)
        c.start()
        started.append(c)
        return c, inbox

    yield start
    for c in started:
        c.stop()


def _cfg(port, **kw):
    return EmailConfig(host="127.0.0.1", port=port, sender="dcops@alerts.example.org", to=("noc@example.org",), **kw)


def test_starttls_with_verified_certificate_and_login(smtp_server, pki, monkeypatch):
    c, inbox = smtp_server("starttls")
    monkeypatch.setenv("SMTP_PW", "smtp-pw-123")
    n = EmailNotifier(_cfg(c.port, tls="starttls", ca_file=pki["ca"], username="dcops", password="env:SMTP_PW"),
                      clock=lambda: NOW)
    res = n.send(MSG, "abc.0:mail:trigger")
    assert res.ok, res.error
    (raw,) = inbox.messages
    m = message_from_bytes(raw)
    assert m["Subject"] == "[MAJOR] CRAC-1 stopped"
    assert m["Message-ID"] == "<abc.0-mail-trigger@alerts.example.org>"
    assert parsedate_to_datetime(m["Date"]).timestamp() == NOW
    body = m.get_payload(decode=True).decode()
    assert "restart it" in body and "Incident: https://dcops.example/incident/abc" in body
    assert "Opened: 2026-11-18T11:06:40.000Z" in body


def test_certificate_not_trusted_is_refused(smtp_server):
    c, inbox = smtp_server("starttls")
    res = EmailNotifier(_cfg(c.port, tls="starttls")).send(MSG, "k")   # default trust store: the test CA is unknown
    assert not res.ok and not res.retryable and "not trusted" in res.error and inbox.messages == []


def test_implicit_tls_port_465_style(smtp_server, pki):
    c, inbox = smtp_server("implicit")
    n = EmailNotifier(_cfg(c.port, tls="implicit", ca_file=pki["ca"], username="dcops", password="smtp-pw-123",
                           message_id_domain="dcops.example.net"))
    assert n.send(MSG, "k1").ok
    assert message_from_bytes(inbox.messages[0])["Message-ID"] == "<k1@dcops.example.net>"
    assert EmailConfig(host="mx", tls="implicit", sender="a@b.c", to=("x@y.z",)).port == 465


def test_starttls_required_but_not_offered_and_4xx_retry(smtp_server, pki):
    c, inbox = smtp_server("plain")
    res = EmailNotifier(_cfg(c.port, tls="starttls", ca_file=pki["ca"])).send(MSG, "k")
    assert not res.ok and not res.retryable and "STARTTLS" in res.error
    assert EmailNotifier(_cfg(c.port)).send(MSG, "k").ok          # plain SMTP to a local relay is allowed
    c2, _ = smtp_server("starttls", reply="451 4.3.0 try later")
    res = EmailNotifier(_cfg(c2.port, tls="starttls", ca_file=pki["ca"])).send(MSG, "k")
    assert not res.ok and res.retryable and res.status == 451


def test_password_is_never_sent_in_clear():
    with pytest.raises(ValueError, match="only sent over TLS"):
        EmailConfig(host="smtp.example.net", sender="a@b.c", to=("x@y.z",), username="u", password="p")
    assert EmailConfig(host="mx", starttls=True, sender="a@b.c", to=("x@y.z",)).tls == "starttls"   # old spelling
