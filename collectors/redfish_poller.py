"""Polling many server BMCs over Redfish, concurrently, into `bmc` and `server` batches and events.

Each poll walks every BMC in a thread pool (Redfish is blocking HTTP; BMCs answer in tens to
hundreds of milliseconds each, so threads, not CPU, are what it takes); with `max_workers=1`
the BMCs are walked in the caller's thread, one after another, as a one-thread pool would. Per BMC:

- a connection is kept between polls (session login once; sushy logs in again when the BMC
  drops or rotates the session token) and rebuilt after a failure;
- a BMC that fails (timeout, TLS, refused login, 5xx on the service root) raises one
  `agent_unreachable` event, is retried with exponential backoff (`backoff_s` doubling to
  `max_backoff_s`, so a dead BMC costs nothing between attempts), and `agent_recovered` when it
  answers again; the others are not held up;
- a resource that fails or a sensor that disappears is said in `problems`, and the rest of the
  BMC's readings are kept;
- log entries are read incrementally (cursors saved to `state_path`, so a restart repeats none)
  and become `bmc_log` events.

Rows carry the server's topology tags from the site (`device` is the server), so a PSU lost on
feed A correlates with the PDU of feed A. The `server` batch summarises what existing rules
use: `server_power_w`, `server_psu_ok`, `server_inlet_temp_degc`, `server_fan_pct`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from dcops.batch import Batch, Event, Severity
from dcops.collectors.redfish_client import BmcTarget, BmcUnavailable, RedfishConnection
from dcops.collectors.redfish_logs import LogEntry, read_logs
from dcops.collectors.redfish_map import BmcSnapshot, RedfishFetchError, read_bmc

__all__ = ["RedfishPoller", "BmcResult", "psu_feeds", "snapshot_batches", "targets_from_site"]

log = logging.getLogger(__name__)
SOURCE = "redfish"


@dataclass
class BmcResult:
    target: BmcTarget
    snapshot: BmcSnapshot | None = None
    entries: list[LogEntry] = field(default_factory=list)
    error: str = ""
    elapsed_s: float = 0.0


@dataclass
class _State:
    conn: RedfishConnection | None = None
    failures: int = 0
    next_try: float = 0.0
    down: bool = False
    psus: dict[str, bool] = field(default_factory=dict)   # bay -> delivering, last poll
    fans: dict[str, bool] = field(default_factory=dict)   # fan -> healthy, last poll


def _tags(target: BmcTarget, inventory) -> dict[str, str]:
    if inventory is not None and target.name in inventory.components:
        return dict(inventory.get(target.name).tags(inventory.site))
    return {"site": "", "hall": "", "row": "", "rack": "", "device": target.name}


def psu_feeds(target: BmcTarget, snap: BmcSnapshot, inventory=None) -> dict[str, str]:
    """PSU bay -> feed (A/B): the target's explicit map, else the bays in order on the server's
    PSU feeds from the site (`psus: [A, B]`), so a PSU lost on feed A lines up with feed A's PDU."""
    if target.psu_feeds:
        return dict(target.psu_feeds)
    feeds: tuple = ()
    if inventory is not None and target.name in inventory.components:
        feeds = tuple(inventory.get(target.name).attrs.get("psus", ()))
    bays = sorted({p.bay for p in snap.psus}, key=lambda b: (len(b), b))
    return {b: f for b, f in zip(bays, feeds)}


def snapshot_batches(target: BmcTarget, snap: BmcSnapshot, time_ns: int, inventory=None) -> list[Batch]:
    """A BMC's snapshot as one `bmc` batch (a row per sensor/part) and one `server` row."""
    base = _tags(target, inventory)
    keys: dict[tuple[str, str, str], dict[str, float]] = {}
    for r in snap.readings:
        keys.setdefault((r.chassis, r.sensor, r.context), {})[r.metric] = r.value
    out = []
    if keys:
        rows = list(keys.items())
        metrics = sorted({m for _, vals in rows for m in vals})
        n = len(rows)
        tags = {k: [v] * n for k, v in base.items() if k in ("site", "hall", "row", "rack", "device")}
        tags.update(chassis=[k[0] for k, _ in rows], sensor=[k[1] for k, _ in rows], context=[k[2] for k, _ in rows])
        fields = {m: np.array([vals.get(m, math.nan) for _, vals in rows]) for m in metrics}
        out.append(Batch("bmc", np.full(n, time_ns, dtype=np.int64), tags, fields))
    summary = _summary(snap)
    feeds = psu_feeds(target, snap, inventory)
    for bay, feed in feeds.items():
        watts = [r.value for r in snap.readings if r.sensor == f"psu:{bay}"
                 and r.metric in ("bmc_psu_input_power_w", "bmc_psu_output_power_w")]
        if watts and feed in "AB":
            summary[f"server_psu_{feed.lower()}_power_w"] = watts[0]
    if summary:
        out.append(Batch("server", np.array([time_ns], dtype=np.int64),
                         {k: [base.get(k, "")] for k in ("site", "hall", "row", "rack", "device")},
                         {k: np.array([v]) for k, v in summary.items()}))
    return out


def _summary(snap: BmcSnapshot) -> dict[str, float]:
    out: dict[str, float] = {}
    power = [r.value for r in snap.readings if r.metric == "bmc_power_w" and r.sensor.startswith("chassis:")]
    if power:
        out["server_power_w"] = float(sum(power))
    if snap.psus:
        out["server_psu_ok"] = float(sum(p.delivering for p in snap.psus))
    inlet = [r.value for r in snap.readings if r.metric == "bmc_temp_degc" and r.context in ("Intake", "Ambient")]
    if inlet:
        out["server_inlet_temp_degc"] = float(min(inlet))
    fans = [r.value for r in snap.readings if r.metric == "bmc_fan_pct"]
    if fans:
        out["server_fan_pct"] = float(sum(fans) / len(fans))
    return out


class RedfishPoller:
    def __init__(self, targets: Sequence[BmcTarget], inventory=None, *, max_workers: int = 32,
                 state_path: str | Path | None = None, clock: Callable[[], int] = time.time_ns,
                 monotonic: Callable[[], float] = time.monotonic, backoff_s: float = 10.0, max_backoff_s: float = 600.0,
                 connect: Callable[[BmcTarget], object] = RedfishConnection) -> None:
        self.targets = list(targets)
        self.inventory = inventory
        self.clock, self.monotonic = clock, monotonic
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s
        self.connect = connect
        self.state = {t.name: _State() for t in self.targets}
        self.state_path = Path(state_path) if state_path else None
        self.cursors: dict[str, dict[str, list[str]]] = self._load_cursors()
        workers = max(1, min(max_workers, len(self.targets) or 1))
        # one worker polls the BMCs one after another: in the caller's thread, without a pool's
        # futures and hand-offs (the simulated BMCs of `dcops eval` answer at once)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dcops-redfish") if workers > 1 else None
        self._lock = threading.Lock()

    # ----- cursors ----------------------------------------------------------------------
    def _load_cursors(self) -> dict:
        if self.state_path is None or not self.state_path.exists():
            return {}
        try:
            data = json.loads(self.state_path.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError) as exc:
            log.error("redfish: cannot read the log cursors %s (%s); logs start afresh", self.state_path, exc)
            return {}

    def _save_cursors(self) -> None:
        if self.state_path is None:
            return
        tmp = self.state_path.with_suffix(".tmp")
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(self.cursors))
        os.replace(tmp, self.state_path)

    # ----- polling ----------------------------------------------------------------------
    def _poll_one(self, target: BmcTarget, now_ns: int) -> BmcResult | None:
        st = self.state[target.name]
        if self.monotonic() < st.next_try:
            return None  # backing off
        started = time.monotonic()
        res = BmcResult(target)
        try:
            if st.conn is None:
                st.conn = self.connect(target)
            res.snapshot = read_bmc(st.conn.fetch)
            with self._lock:
                cursors = self.cursors.get(target.name)
            res.entries, new = read_logs(st.conn.fetch, cursors if cursors is not None else {}, now_ns)
            with self._lock:
                self.cursors[target.name] = new
        except (BmcUnavailable, RedfishFetchError) as exc:
            res.error = str(exc)
            if st.conn is not None:
                st.conn.close()
            st.conn = None
        res.elapsed_s = time.monotonic() - started
        return res

    def poll(self) -> tuple[list[Batch], list[Event], list[str]]:
        """One round over every BMC not backing off: (batches, events, problems)."""
        now = self.clock()
        each = self._pool.map if self._pool is not None else map
        results = [r for r in each(lambda t: self._poll_one(t, now), self.targets) if r is not None]
        batches: list[Batch] = []
        events: list[Event] = []
        problems: list[str] = []
        for res in results:
            t, st = res.target, self.state[res.target.name]
            tags = _tags(t, self.inventory)
            if res.error:
                st.failures += 1
                st.next_try = self.monotonic() + min(self.backoff_s * 2 ** (st.failures - 1), self.max_backoff_s)
                problems.append(f"{t.name}: {res.error} (next try in {st.next_try - self.monotonic():.0f} s)")
                if not st.down:
                    st.down = True
                    events.append(Event(now, "agent_unreachable", SOURCE, tags, Severity.MAJOR,
                                        f"BMC of {t.name} unreachable: {res.error}", {"url": t.url}))
                continue
            st.failures, st.next_try = 0, 0.0
            if st.down:
                st.down = False
                events.append(Event(now, "agent_recovered", SOURCE, tags, Severity.INFO, f"BMC of {t.name} answers again",
                                    {"url": t.url}))
            snap = res.snapshot
            problems += [f"{t.name}: {p}" for p in snap.problems]
            events += self._transitions(t, st, snap, tags, now)
            batches += snapshot_batches(t, snap, now, self.inventory)
            for e in res.entries:
                events.append(Event(e.time_ns or now, "bmc_log", SOURCE, tags, e.severity, e.message,
                                    {"message_id": e.message_id, "log": e.log, "entry": e.entry_id, "origin": e.origin}))
        self._save_cursors()
        return batches, events, problems

    def _transitions(self, t: BmcTarget, st: _State, snap: BmcSnapshot, tags: dict, now: int) -> list[Event]:
        """A PSU or fan that stops (or starts again) delivering is an event, once per change:
        `psu_fault`/`psu_recovered` (with the feed) and `fan_fault`/`fan_recovered`."""
        out = []
        feeds = psu_feeds(t, snap, self.inventory)
        for p in snap.psus:
            if not p.present:
                continue
            was = st.psus.get(p.bay)
            st.psus[p.bay] = p.delivering
            if was is not None and was != p.delivering:
                feed = feeds.get(p.bay, "")
                out.append(Event(now, "psu_recovered" if p.delivering else "psu_fault", SOURCE, tags,
                                 Severity.CLEARED if p.delivering else Severity.MAJOR,
                                 f"PSU {p.bay}{f' (feed {feed})' if feed else ''} of {t.name} "
                                 f"{'delivers again' if p.delivering else 'stopped delivering'}",
                                 {"psu": feed or p.bay, "bay": p.bay, "chassis": p.chassis}))
        health = {r.sensor: r.value for r in snap.readings if r.metric == "bmc_health" and r.sensor.startswith("fan:")}
        for fan, h in health.items():
            ok = h < 2.0
            was = st.fans.get(fan)
            st.fans[fan] = ok
            if was is not None and was != ok:
                out.append(Event(now, "fan_recovered" if ok else "fan_fault", SOURCE, tags,
                                 Severity.CLEARED if ok else Severity.MAJOR,
                                 f"{fan[4:]} of {t.name} {'runs again' if ok else 'failed'}", {"fan": fan[4:]}))
        return out

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        for st in self.state.values():
            if st.conn is not None:
                st.conn.close()
                st.conn = None


def targets_from_site(cfg) -> list[BmcTarget]:
    """Every server with a `bmc:` in the site config, as a poll target (`{server}` filled in)."""
    out = []
    for hall in cfg.halls:
        for row in hall.rows:
            for rack in row.racks:
                for srv in cfg.servers_of(rack):
                    b = srv.bmc
                    if b is None:
                        continue
                    verify = False if not b.verify else (b.ca_file or True)
                    out.append(BmcTarget(srv.name, b.url.replace("{server}", srv.name), b.username,
                                         b.password.get_secret_value() if b.password is not None else None,
                                         verify, b.timeout_s, b.auth, tuple(sorted(b.psu_feeds.items()))))
    return out
