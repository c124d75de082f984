"""The demo's control endpoint: `dcops inject` talks to a running demo through it.

A loopback-only HTTP server on an ephemeral port; its address and a random token are written
to `<data_dir>/control.json` (mode 0600). Requests without the token are refused.

    POST /inject  {"fault": "crac_failure", "target": "CRAC-H1-2", "duration_s": 600}
    GET  /faults  -> the ground-truth labels so far

(Power caps do not come here: the demo serves the accelerator agents' own control API,
`dcops.collectors.power_api`, over the simulated GPUs.)
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

__all__ = ["ControlServer", "read_control"]


class ControlServer:
    def __init__(self, data_dir: Path, inject: Callable[..., object], labels: Callable[[], list]) -> None:
        self.token = secrets.token_urlsafe(24)
        self.path = Path(data_dir) / "control.json"
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep the demo's console quiet
                return

            def _reply(self, code: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _authorised(self) -> bool:
                given = self.headers.get("X-DCOPS-Token", "")
                if not hmac.compare_digest(given.encode(), outer.token.encode()):
                    self._reply(403, {"error": "missing or wrong X-DCOPS-Token"})
                    return False
                return True

            def do_GET(self):  # noqa: N802
                if not self._authorised():
                    return
                if self.path != "/faults":
                    return self._reply(404, {"error": f"no such path {self.path}"})
                self._reply(200, [lab.to_dict() for lab in labels()])

            def do_POST(self):  # noqa: N802
                if not self._authorised():
                    return
                if self.path != "/inject":
                    return self._reply(404, {"error": f"no such path {self.path}"})
                try:
                    length = int(self.headers.get("Content-Length", "0"))
                    if length > 65536:
                        raise ValueError("body too large")
                    body = json.loads(self.rfile.read(length) or b"{}")
                    if not isinstance(body, dict):
                        raise ValueError("body must be a JSON object")
                    fault, target = body.get("fault"), body.get("target")
                    if not isinstance(fault, str) or not isinstance(target, str):
                        raise ValueError("'fault' and 'target' are required strings")
                    duration = body.get("duration_s", -1.0)
                    if duration is not None and not isinstance(duration, (int, float)):
                        raise ValueError("'duration_s' must be a number or null")
                    label = inject(fault, target, duration)
                except (ValueError, KeyError) as exc:
                    return self._reply(400, {"error": str(exc).strip('"')})
                self._reply(200, label.to_dict())

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="dcops-control", daemon=True)

    def start(self) -> None:
        self._thread.start()
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"url": self.url, "token": self.token, "pid": os.getpid()}, fh)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.path.unlink(missing_ok=True)


def read_control(data_dir: Path) -> dict:
    path = Path(data_dir) / "control.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"no running demo found ({path} is missing); start `dcops demo` first") from None
