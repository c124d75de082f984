"""A Redfish BMC for tests: serves a mockup folder over HTTP(S) on loopback, with real session
authentication and faults on demand (5xx, malformed JSON, a sensor gone, a hung BMC, a session
token the BMC forgets). sushy-static (the README's server) serves the mockups as they are; this
one adds what a fault test needs."""

from __future__ import annotations

import base64
import json
import secrets
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

MOCKUPS = Path(__file__).resolve().parents[3] / "shared" / "data" / "redfish"


def make_cert(tmp: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (its own CA): (cert, key)."""
    cert, key = tmp / "bmc.crt", tmp / "bmc.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


class FakeBmc:
    def __init__(self, mockup: str | Path, user: str = "admin", password: str = "s3cret-bmc",
                 tls: tuple[Path, Path] | None = None) -> None:
        self.root = Path(mockup) if Path(mockup).is_absolute() else MOCKUPS / mockup
        self.user, self.password = user, password
        self.faults: dict[str, object] = {}   # path -> 500 | 404 | "garbage" | "hang"
        self.tokens: set[str] = set()
        self.subscriptions: list[dict] = []
        self.logins = 0
        self.gets = 0
        outer = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _send(self, code: int, body: bytes, headers: dict | None = None) -> None:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                if (self.headers.get("Connection") or "").lower() == "close":  # say so, as BMCs do
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                self.wfile.write(body)

            def _authorised(self) -> bool:
                tok = self.headers.get("X-Auth-Token")
                if tok is not None:
                    return tok in outer.tokens
                auth = self.headers.get("Authorization", "")
                if auth.startswith("Basic "):
                    return base64.b64decode(auth[6:]).decode() == f"{outer.user}:{outer.password}"
                return False

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path.rstrip("/") == "/redfish/v1/SessionService/Sessions":
                    try:
                        creds = json.loads(body)
                    except ValueError:
                        creds = {}
                    if creds.get("UserName") == outer.user and creds.get("Password") == outer.password:
                        tok = secrets.token_hex(16)
                        outer.tokens.add(tok)
                        outer.logins += 1
                        sid = str(outer.logins)
                        return self._send(201, json.dumps({"@odata.id": f"/redfish/v1/SessionService/Sessions/{sid}",
                                                           "Id": sid}).encode(),
                                          {"X-Auth-Token": tok, "Location": f"/redfish/v1/SessionService/Sessions/{sid}"})
                    return self._send(401, b'{"error": {"code": "Base.1.0.NoValidSession"}}')
                if self.path.rstrip("/") == "/redfish/v1/EventService/Subscriptions" and self._authorised():
                    outer.subscriptions.append(json.loads(body))
                    n = len(outer.subscriptions)
                    return self._send(201, json.dumps({"Id": str(n)}).encode(),
                                      {"Location": f"/redfish/v1/EventService/Subscriptions/{n}"})
                self._send(405, b"{}")

            def do_DELETE(self):  # noqa: N802
                self._send(204, b"")

            def do_GET(self):  # noqa: N802
                outer.gets += 1
                path = self.path.split("?", 1)[0].rstrip("/") or "/"
                public = path in ("/redfish", "/redfish/v1", "/redfish/v1/SessionService",
                                  "/redfish/v1/SessionService/Sessions")
                if not public and not self._authorised():
                    return self._send(401, b'{"error": {"code": "Base.1.0.NoValidSession"}}')
                fault = outer.faults.get(path)
                if fault == "hang":
                    time.sleep(30)
                    return
                if fault == 500:
                    return self._send(500, b'{"error": {"code": "Base.1.0.InternalError"}}')
                if fault == "garbage":
                    return self._send(200, b"{\"Id\": \"trunc")
                if fault == 404:
                    return self._send(404, b'{"error": {"code": "Base.1.0.ResourceMissingAtURI"}}')
                f = outer.root / path[len("/redfish/v1"):].lstrip("/") / "index.json"
                if path == "/redfish":
                    return self._send(200, b'{"v1": "/redfish/v1/"}')
                if not f.is_file():
                    return self._send(404, b'{"error": {"code": "Base.1.0.ResourceMissingAtURI"}}')
                self._send(200, f.read_bytes())

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        scheme = "http"
        if tls is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(tls[0]), str(tls[1]))
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> "FakeBmc":
        self._thread.start()
        return self

    def push(self, events: list[dict]) -> int:
        """Send a Redfish Event to every subscriber, as a BMC does; returns the last HTTP status."""
        import urllib.error
        import urllib.request

        status = 0
        for sub in self.subscriptions:
            body = json.dumps({"@odata.type": "#Event.v1_7_0.Event", "Id": str(time.time_ns()), "Name": "Event",
                               "Context": sub.get("Context", ""), "Events": events}).encode()
            req = urllib.request.Request(sub["Destination"], data=body, headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=5) as r:
                    status = r.status
            except urllib.error.HTTPError as exc:
                status = exc.code
        return status

    def forget_sessions(self) -> None:
        """The BMC drops every session (a BMC reboot, a session timeout, a token rotation)."""
        self.tokens.clear()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
