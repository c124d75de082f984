"""SNMP test helpers: recordings, LibreNMS expectations, and real agents on loopback.

- `read_snmprec(path)`: an `.snmprec` recording as {oid: python value} (unsorted input is fine).
- `librenms_sensors(path)`: the sensors LibreNMS reads from the same recording, classes we map.
- `compare_with_librenms(readings, sensors)`: per-sensor verdicts (same unit, value within 1 %).
- `Snmpsim`: snmpsim serving a directory of recordings (community = file name), as root safely.
- `Snmpd`: a net-snmp `snmpd` with `override` values and optional v3 users, on a free port.

No pytest at module level: bench/snmp_poll.py imports this file by path.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ALSO_UNITS", "CLASS_UNITS", "Verdict", "compare_with_librenms", "free_udp_port", "free_udp_ports", "librenms_sensors",
    "read_snmprec", "Snmpd", "Snmpsim", "wait_udp_agent",
]

# LibreNMS sensor class -> (our canonical unit, factor from LibreNMS's value to ours)
CLASS_UNITS = {
    "power": ("W", 1.0), "current": ("A", 1.0), "voltage": ("V", 1.0), "frequency": ("Hz", 1.0),
    "temperature": ("degC", 1.0), "humidity": ("%RH", 1.0), "load": ("%", 1.0),
    "charge": ("%", 1.0), "runtime": ("s", 60.0),
}

# LibreNMS's "power" class holds active (W), apparent (VA) and reactive (VAR) power alike (the
# sensor's description says which); we keep them apart, so any of the three units matches it.
ALSO_UNITS = {"power": ("VA", "VAR")}

# Where LibreNMS's own number is in another unit than its class claims. Each entry names the
# reason; the comparison converts LibreNMS's number before comparing, it never loosens it.
LIBRENMS_UNIT_FIXES = {
    # APC coolingUnitStatusAnalogTable rows whose units column says "kW": LibreNMS stores the kW
    # number in its W-based power class (11 "W" for 11.0 kW of cooling demand).
    ("apc_inrow-dx", "1.3.6.1.4.1.318.1.1.27.1.4.1.2.1.3.1.7"): (1000.0, "units column says kW"),
    ("apc_inrow-dx", "1.3.6.1.4.1.318.1.1.27.1.4.1.2.1.3.1.8"): (1000.0, "units column says kW"),
    ("apc_inrow-dx", "1.3.6.1.4.1.318.1.1.27.1.4.1.2.1.3.1.24"): (1000.0, "units column says kW"),
    ("apc_inrow-dx", "1.3.6.1.4.1.318.1.1.27.1.4.1.2.1.3.1.25"): (1000.0, "units column says kW"),
    # huaweiups divides the RFC 1628 frequencies (0.1 Hz units, raw 500) by 100 and shows 5 Hz mains.
    ("huaweiups_ups2000", "1.3.6.1.2.1.33.1.3.3.1.2.1"): (10.0, "RFC 1628 upsInputFrequency is in 0.1 Hz"),
    ("huaweiups_ups2000", "1.3.6.1.2.1.33.1.4.2.0"): (10.0, "RFC 1628 upsOutputFrequency is in 0.1 Hz"),
    ("huaweiups_ups2000", "1.3.6.1.2.1.33.1.5.1.0"): (10.0, "RFC 1628 upsBypassFrequency is in 0.1 Hz"),
}

_INT_TYPES = {"2", "65", "66", "67", "70"}


def read_snmprec(path: str | Path) -> dict[str, object]:
    """{oid: value} from an snmpsim recording: ints for numeric types, str otherwise."""
    out: dict[str, object] = {}
    for line in Path(path).read_text(encoding="latin-1").splitlines():
        parts = line.split("|", 2)
        if len(parts) != 3:
            continue
        oid, typ, value = parts
        hexed = typ.endswith("x")
        typ = typ.rstrip("x")
        if hexed:
            try:
                value = bytes.fromhex(value).decode("latin-1")
            except ValueError:
                pass
        if typ in _INT_TYPES:
            try:
                out[oid] = int(value)
            except ValueError:
                out[oid] = value
        else:
            out[oid] = value
    return out


def librenms_sensors(path: str | Path) -> list[dict]:
    """The sensors of the classes we map, from `poller.sensors` when a list, else discovery."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    s = data.get("sensors") or {}
    poller = s.get("poller")
    sensors = poller["sensors"] if isinstance(poller, dict) and isinstance(poller.get("sensors"), list) else s["discovery"]["sensors"]
    return [x for x in sensors if x["sensor_class"] in CLASS_UNITS]


@dataclass(frozen=True)
class Verdict:
    oid: str
    sensor_class: str
    descr: str
    expected: float
    got: float | None
    unit: str | None
    ok: bool
    note: str


def _is_no_reading(m) -> bool:
    """Only these reasons stand in for a LibreNMS number: the raw value is a marker or impossible."""
    return m.reason.startswith(("sentinel value", "agent says", "value ")) or "outside the possible range" in m.reason


def compare_with_librenms(device: str, readings, sensors: list[dict], recording: dict[str, object],
                          missing=()) -> list[Verdict]:
    """One verdict per LibreNMS sensor; readings matched by OID. Sensors whose OID has no
    value in the recording (LibreNMS shows 0 for them) pass only if we report nothing.

    Where LibreNMS turns a "no reading" marker into a number (65535 minutes of runtime, 6553.5 A
    of battery current) or keeps a physically impossible one (-4 W of UPS output power), the
    sensor passes only if we report it as missing (`missing`: objects with .oid and .reason) and
    invent no reading; the verdict's note says so ("sentinel: ...")."""
    by_oid: dict[str, list] = {}
    for r in readings:
        by_oid.setdefault(r.oid, []).append(r)
    missing_by_oid = {m.oid: m for m in missing}
    out = []
    for s in sensors:
        oid = s["sensor_oid"].lstrip(".")
        unit, factor = CLASS_UNITS[s["sensor_class"]]
        if oid in missing_by_oid and oid in recording and not by_oid.get(oid) and _is_no_reading(missing_by_oid[oid]):
            out.append(Verdict(oid, s["sensor_class"], s["sensor_descr"], float(s["sensor_current"]) * factor, None, None,
                               True, f"missing: {missing_by_oid[oid].reason} (LibreNMS shows {s['sensor_current']})"))
            continue
        fix, why = LIBRENMS_UNIT_FIXES.get((device, oid), (1.0, ""))
        expected = float(s["sensor_current"]) * factor * fix
        mine = by_oid.get(oid, [])
        if oid not in recording:
            ok = not mine
            out.append(Verdict(oid, s["sensor_class"], s["sensor_descr"], expected, None, None, ok,
                               "no value in the recording; reported as missing" if ok else "invented a value"))
            continue
        match = [r for r in mine if r.unit == unit or r.unit in ALSO_UNITS.get(s["sensor_class"], ())]
        if not match:
            got = mine[0] if mine else None
            out.append(Verdict(oid, s["sensor_class"], s["sensor_descr"], expected,
                               got.value if got else None, got.unit if got else None, False,
                               "not read" if not mine else f"unit {got.unit} != {unit}"))
            continue
        r = match[0]
        ok = math.isclose(r.value, expected, rel_tol=0.01, abs_tol=1e-9)
        out.append(Verdict(oid, s["sensor_class"], s["sensor_descr"], expected, r.value, r.unit, ok, why))
    return out


# ---- real agents ------------------------------------------------------------------------------

def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_udp_agent(port: int, community: str, timeout_s: float = 20.0) -> None:
    """Wait until an SNMP agent answers a v2c GET of sysUpTime (net-snmp snmpget)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        r = subprocess.run(["snmpget", "-v2c", "-c", community, "-t", "0.5", "-r", "0", "-On", "-Oqv",
                            f"127.0.0.1:{port}", "1.3.6.1.2.1.1.3.0"], capture_output=True, text=True)
        if r.returncode == 0:
            return
        time.sleep(0.2)
    raise TimeoutError(f"no SNMP agent answered on 127.0.0.1:{port} within {timeout_s}s")


def free_udp_ports(n: int, exclude: set[int] = frozenset()) -> list[int]:
    """`n` distinct free UDP ports (sockets held together while choosing, so no repeats)."""
    socks, ports = [], []
    try:
        while len(ports) < n:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            p = s.getsockname()[1]
            if p not in exclude:
                ports.append(p)
    finally:
        for s in socks:
            s.close()
    return ports


def _stop(proc: subprocess.Popen | None, log, tmp: str, resume: bool = False) -> None:
    """Terminate our own child (resumed first if it may be SIGSTOPped), then clean up."""
    if proc and proc.poll() is None:
        if resume:
            try:
                os.kill(proc.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    log.close()
    shutil.rmtree(tmp, ignore_errors=True)


_SNMPSIM_LAUNCHER = """
import dbm.dumb, encodings.latin_1, encodings.utf_8, encodings.ascii  # before privileges drop
import sys
from snmpsim.commands.responder import main
sys.argv = ["snmpsim-command-responder"] + sys.argv[1:]
sys.exit(main())
"""


class Snmpsim:
    """snmpsim-command-responder over `data_dir` on a free loopback port (context manager)."""

    def __init__(self, data_dir: str | Path) -> None:
        self.data_dir = Path(data_dir)
        self.port = free_udp_port()
        self._tmp = tempfile.mkdtemp(prefix="dcops-snmpsim-")
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "Snmpsim":
        os.chmod(self._tmp, 0o777)
        launcher = Path(self._tmp) / "launch_snmpsim.py"
        launcher.write_text(_SNMPSIM_LAUNCHER)
        cmd = [sys.executable, str(launcher), f"--data-dir={self.data_dir}",
               f"--agent-udpv4-endpoint=127.0.0.1:{self.port}", f"--cache-dir={self._tmp}/cache",
               f"--log-level=error"]
        if os.geteuid() == 0:
            cmd += ["--process-user=nobody", "--process-group=nogroup"]
        self.log = open(Path(self._tmp) / "snmpsim.log", "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        try:
            wait_udp_agent(self.port, next(p.stem for p in self.data_dir.glob("*.snmprec")), 60.0)
        except Exception:
            text = (Path(self._tmp) / "snmpsim.log").read_text()[-2000:]
            self.__exit__()
            raise RuntimeError("snmpsim did not start: " + text) from None
        return self

    def __exit__(self, *exc) -> None:
        _stop(self.proc, self.log, self._tmp)


class Snmpd:
    """net-snmp snmpd on a free port with `override` values, communities and v3 users.

    `values`: {oid: (type, value)} with net-snmp override types (integer, gauge, counter,
    octet_str, object_id, timeticks, unsigned). `v3_users`: (user, auth, auth_key, priv, priv_key).
    `extra_ports`: listen on that many more (or these) ports (`.ports`), each a distinct endpoint.
    Pause/resume it with SIGSTOP/SIGCONT to play an agent that stops answering.
    """

    def __init__(self, values: dict[str, tuple[str, object]], communities: tuple[str, ...] = ("public",),
                 v3_users: tuple[tuple[str, str, str, str, str], ...] = (), port: int | None = None,
                 engine_id: str | None = None, extra_ports: int | list[int] = 0) -> None:
        self.port = port or free_udp_port()
        more = list(extra_ports) if isinstance(extra_ports, list) else free_udp_ports(extra_ports, exclude={self.port})
        self.ports = [self.port] + more
        self.values = values
        self.communities = communities
        self.v3_users = v3_users
        self.engine_id = engine_id
        self._tmp = tempfile.mkdtemp(prefix="dcops-snmpd-")
        self.proc: subprocess.Popen | None = None

    def _config(self) -> str:
        lines = ["sysObjectID 1.3.6.1.4.1.8072.3.2.10",
                 "sysDescr dcops test agent", "master no", "agentXSocket /dev/null"]
        if self.engine_id:
            lines.append(f"engineID {self.engine_id}")
        for c in self.communities:
            lines.append(f"rocommunity {c} 127.0.0.1")
        for user, auth, akey, priv, pkey in self.v3_users:
            lines.append(f"createUser {user} {auth} {akey} {priv} {pkey}")
            lines.append(f"rouser {user} priv")
        for oid, (typ, value) in self.values.items():
            v = f'"{value}"' if typ == "octet_str" else value
            lines.append(f"override .{oid.lstrip('.')} {typ} {v}")
        return "\n".join(lines) + "\n"

    def __enter__(self) -> "Snmpd":
        conf = Path(self._tmp) / "snmpd.conf"
        conf.write_text(self._config())
        persist = Path(self._tmp) / "persist"
        persist.mkdir()
        env = dict(os.environ, SNMP_PERSISTENT_DIR=str(persist), MIBS="")
        self.log = open(Path(self._tmp) / "snmpd.log", "w")
        self.proc = subprocess.Popen(
            ["snmpd", "-f", "-Lo", "-C", "-c", str(conf), "-p", str(Path(self._tmp) / "snmpd.pid"),
             "-I", "-smux,mteTrigger,mteTriggerConf", ",".join(f"udp:127.0.0.1:{p}" for p in self.ports)],
            stdout=self.log, stderr=subprocess.STDOUT, env=env)
        try:
            wait_udp_agent(self.port, self.communities[0] if self.communities else "public", 20.0)
        except Exception:
            text = (Path(self._tmp) / "snmpd.log").read_text()[-2000:]
            self.__exit__()
            raise RuntimeError("snmpd did not start: " + text) from None
        return self

    def pause(self) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)

    def __exit__(self, *exc) -> None:
        _stop(self.proc, self.log, self._tmp, resume=True)
