"""Serve a WSGI app with waitress in a background thread (`/metrics`, `/healthz`, the
Alertmanager inbound endpoint, the demo's control endpoint, pager and agents' power API): one
production server for every HTTP endpoint dcops runs.

waitress reads the whole request body before the app sees it, so:
- a body larger than `max_body` is answered `413` by waitress itself;
- a client that announces a Content-Length and sends less is disconnected after
  `channel_timeout_s` of silence (checked every second), never holding a worker thread;
- tracebacks never reach the client (`expose_tracebacks=False`).

Nothing starts on import; `WsgiServer(...).start()` binds and serves, `close()` stops the
listener, closes open connections and joins the thread.
"""

from __future__ import annotations

import threading

from waitress import wasyncore
from waitress.server import create_server

__all__ = ["WsgiServer", "request_headers"]


def request_headers(environ) -> dict[str, str]:
    """The request's headers from a WSGI environ, lower-case names (`x-dcops-token`, `content-type`)."""
    out = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
    for k in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(k):
            out[k.replace("_", "-").lower()] = environ[k]
    return out


class WsgiServer:
    """One waitress server on (host, port); `port` is the bound one (port 0 picks a free one)."""

    def __init__(self, app, host: str, port: int, *, name: str = "dcops-http", threads: int = 4,
                 channel_timeout_s: int = 10, max_body: int = 4 << 20) -> None:
        self._server = create_server(
            app, host=host, port=port, threads=threads, channel_timeout=channel_timeout_s, cleanup_interval=1,
            max_request_body_size=max_body, expose_tracebacks=False, ident="dcops", asyncore_loop_timeout=0.5,
            clear_untrusted_proxy_headers=True)
        self.host = host
        self.port = int(self._server.effective_port)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        try:
            self._server.run()
        except OSError:  # the map was closed under the loop by close(): the normal way out
            pass

    def start(self) -> "WsgiServer":
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def close(self, timeout_s: float = 5.0) -> None:
        self._server.task_dispatcher.shutdown(timeout=timeout_s)
        wasyncore.close_all(self._server._map)
        if self._thread.is_alive():
            self._thread.join(timeout=timeout_s)
