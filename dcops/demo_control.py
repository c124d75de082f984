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
from http import HTTPStatus
from pathlib import Path
from typing import Callable

from dcops.httpserve import WsgiServer

__all__ = ["ControlServer", "read_control"]

MAX_BODY = 65536


def _reply(start_response, code: int, body: object) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(f"{code} {HTTPStatus(code).phrase}",
                   [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


class ControlServer:
    """The control endpoint as a WSGI app on the one HTTP server helper (`dcops.httpserve`)."""

    def __init__(self, data_dir: Path, inject: Callable[..., object], labels: Callable[[], list]) -> None:
        self.token = secrets.token_urlsafe(24)
        self.path = Path(data_dir) / "control.json"
        self._inject = inject
        self._labels = labels
        self._server = WsgiServer(self.app, "127.0.0.1", 0, name="dcops-control", threads=2, max_body=MAX_BODY)
        self.url = self._server.url

    def app(self, environ, start_response):
        given = environ.get("HTTP_X_DCOPS_TOKEN", "")
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            return _reply(start_response, 403, {"error": "missing or wrong X-DCOPS-Token"})
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        if (method, path) == ("GET", "/faults"):
            return _reply(start_response, 200, [lab.to_dict() for lab in self._labels()])
        if (method, path) != ("POST", "/inject"):
            return _reply(start_response, 404, {"error": f"no such path {method} {path}"})
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = json.loads(environ["wsgi.input"].read(length) or b"{}")
            if not isinstance(body, dict):
                raise ValueError("body must be a JSON object")
            fault, target = body.get("fault"), body.get("target")
            if not isinstance(fault, str) or not isinstance(target, str):
                raise ValueError("'fault' and 'target' are required strings")
            duration = body.get("duration_s", -1.0)
            if duration is not None and not isinstance(duration, (int, float)):
                raise ValueError("'duration_s' must be a number or null")
            label = self._inject(fault, target, duration)
        except (ValueError, KeyError) as exc:
            return _reply(start_response, 400, {"error": str(exc).strip('"')})
        return _reply(start_response, 200, label.to_dict())

    def start(self) -> None:
        self._server.start()
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"url": self.url, "token": self.token, "pid": os.getpid()}, fh)

    def stop(self) -> None:
        self._server.close()
        self.path.unlink(missing_ok=True)


def read_control(data_dir: Path) -> dict:
    path = Path(data_dir) / "control.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"no running demo found ({path} is missing); start `dcops demo` first") from None
