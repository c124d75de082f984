"""SNMP polling: many agents at once, each on its own interval, readings out as batches.

- `poll_agent(client, target, profiles)`: one poll of one agent -> `PollResult` (used by the
  CLI and by the poller). Profile: `target.profile`, or auto-detected from sysObjectID /
  sysDescr and, failing those, probe OIDs (standard MIBs behind generic identities).
- `SnmpPoller`: per-target loops under one semaphore (bounded concurrency). The first poll of
  an agent walks its tables (GETBULK); later ones fetch just the rows found (one request),
  walking again every `rewalk_every` polls or as soon as an instance disappears. An agent that
  stops answering costs only its own loop and one slot for `timeout_s * (retries + 1)`; it
  becomes one `agent_unreachable` event (logged once, not every poll) and, when it answers
  again, one `agent_recovered` event. Problems with single values (unexpected types,
  non-increasing OIDs) are logged once per agent and the rest of the poll is kept.
- `run_poller(targets, bus, stop_event, site)`: the blocking entry for `dcops demo` threads.
- `run_role(cfg, stop_event)`: the `poller` role of `dcops up`: targets from the site's `snmp:`
  sections, bus from its settings.

Delivery: batches and events are published as soon as a poll ends (`publish_batch`, key =
device); the bus decides durability (Kafka spool / acks=all). A poll that fails publishes no
batch: the store shows a gap, and the event says why.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from dcops.batch import Batch, Event, Severity
from dcops.bus import Bus, publish_batch, publish_events
from dcops.site import SiteConfig, SnmpTarget

from dcops.collectors.snmp_engine import SnmpAuthError, SnmpClient, SnmpError, Session
from dcops.collectors.snmp_mapping import Missing, Reading, Snapshot, map_snapshot_full, readings_to_batches
from dcops.collectors.snmp_profiles import Profile, choose_profile, default_profiles, probes_for

__all__ = ["Layout", "PollResult", "PollTarget", "SnmpPoller", "poll_agent", "run_poller", "run_role", "targets_from_site"]

log = logging.getLogger(__name__)

SYS_DESCR = "1.3.6.1.2.1.1.1.0"
SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"


@dataclass(frozen=True)
class PollTarget:
    """A device to poll: its topology tags (site, hall, device, row, rack) and how to reach it."""

    name: str
    tags: Mapping[str, str]
    snmp: SnmpTarget


@dataclass(frozen=True)
class Layout:
    """The instances a walk found: later polls ask for exactly as many rows (one request)."""

    scalars: tuple[str, ...]
    rows: tuple[tuple[str, str], ...]  # (column root, row suffix)

    def requests(self, max_varbinds: int = 60, max_rows: int = 32) -> list[tuple[int, tuple[str, ...]]]:
        """(rows, roots) per GETBULK: columns of equal row count together, each request at
        most `max_varbinds`. Columns longer than `max_rows` come as (0, roots): walk those
        (a long fixed-size answer may not fit the agent's message size and come back cut)."""
        counts: dict[str, int] = {}
        for r, _ in self.rows:
            counts[r] = counts.get(r, 0) + 1
        groups: dict[int, list[str]] = {}
        for r, n in counts.items():
            groups.setdefault(n, []).append(r)
        out = []
        for n, roots in sorted(groups.items()):
            if n > max_rows:
                out.append((0, tuple(roots)))
                continue
            per = max(1, max_varbinds // n)
            out += [(n, tuple(roots[i:i + per])) for i in range(0, len(roots), per)]
        return out

    @classmethod
    def of(cls, scalars: Mapping[str, object], tables: Mapping[str, Mapping[str, object]]) -> "Layout":
        return cls(tuple(scalars), tuple((r, sfx) for r, rows in tables.items() for sfx in rows))


@dataclass
class PollResult:
    target: str
    ok: bool
    profile: str | None = None
    readings: list[Reading] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    missing: list[Missing] = field(default_factory=list)  # answered, but no usable value (and why)
    error: str | None = None
    auth_error: bool = False
    duration_s: float = 0.0
    layout: Layout | None = None  # what to GET next time (None: walk again)
    profile_obj: Profile | None = None  # the profile used (several standard ones combined: "ups-mib+entity-sensor")


async def detect_profile(client: SnmpClient, s: Session, profiles: Mapping[str, Profile]) -> tuple[Profile | None, str]:
    ident = await client.get(s, [SYS_OBJECT_ID, SYS_DESCR])
    oid, descr = str(ident.get(SYS_OBJECT_ID, "")), str(ident.get(SYS_DESCR, ""))
    # one GETBULK answers every family's probe tables: they confirm the model within a vendor
    # family and find the standard MIBs (UPS-MIB, ENTITY-SENSOR, ...) for anything else
    probes = await client.probe(s, probes_for(profiles))
    p = choose_profile(profiles, oid, descr, probes)
    return p, f"sysObjectID {oid or '-'}, sysDescr {descr[:60]!r}"


def resolve_profile_name(name: str, profiles: Mapping[str, Profile]) -> Profile:
    try:
        return profiles[name]
    except KeyError:
        raise SnmpError(f"unknown SNMP profile {name!r} (have: {', '.join(sorted(profiles))})") from None


async def poll_agent(client: SnmpClient, target: SnmpTarget, profiles: Mapping[str, Profile] | None = None,
                     session: Session | None = None, profile: Profile | None = None,
                     layout: Layout | None = None) -> PollResult:
    """One poll of one agent. Never raises for agent trouble: the result says what happened.

    Without `layout` the profile's columns are walked (GETBULK until each column ends) and the
    result carries the layout found; with one, a single GETBULK asks for the scalars and as many
    rows per column as were found. A layout that no longer matches (an instance gone) is
    dropped, so the next poll walks again; new rows show up at the next scheduled walk.
    """
    profiles = profiles if profiles is not None else default_profiles()
    t0 = time.perf_counter()
    name = f"{target.host}:{target.port}"
    try:
        s = session or await client.session(target)
        if profile is None:
            if target.profile != "auto":
                profile = resolve_profile_name(target.profile, profiles)
            else:
                profile, ident = await detect_profile(client, s, profiles)
                if profile is None:
                    return PollResult(name, False, error=f"{name}: no profile matches ({ident}); give one with --profile / snmp.profile",
                                      duration_s=time.perf_counter() - t0)
        if layout is not None and layout.rows:
            # GETBULKs of exactly as many rows as the walk found (usually one request, the
            # scalars riding along as non-repeaters)
            tables, problems, scalars = {}, [], {}
            for k, (n, roots) in enumerate(layout.requests()):
                t, p, sc = await client.walk(s, roots, scalars=layout.scalars if k == 0 else (), fixed_reps=n or None)
                tables.update(t)
                problems += p
                scalars.update(sc)
            found = {(r, sfx) for r, rows in tables.items() for sfx in rows}
            next_layout = layout if found.issuperset(layout.rows) and len(scalars) == len(layout.scalars) else None
        elif layout is not None:
            tables, problems = {}, []
            scalars = await client.get(s, layout.scalars) if layout.scalars else {}
            next_layout = layout if len(scalars) == len(layout.scalars) else None
        elif profile.walk_roots:
            tables, problems, scalars = await client.walk(s, profile.walk_roots, scalars=profile.get_oids)
            next_layout = Layout.of(scalars, tables)
        else:
            tables, problems = {}, []
            scalars = await client.get(s, profile.get_oids) if profile.get_oids else {}
            next_layout = Layout.of(scalars, {})
        readings, missing, more = map_snapshot_full(profile, Snapshot(scalars, tables))
        return PollResult(name, True, profile.name, readings, problems + more, missing, duration_s=time.perf_counter() - t0,
                          layout=next_layout, profile_obj=profile)
    except SnmpAuthError as exc:
        return PollResult(name, False, profile.name if profile else None, error=str(exc), auth_error=True, duration_s=time.perf_counter() - t0)
    except SnmpError as exc:
        return PollResult(name, False, profile.name if profile else None, error=str(exc), duration_s=time.perf_counter() - t0)


@dataclass
class _State:
    target: PollTarget
    session: Session | None = None
    profile: Profile | None = None
    up: bool | None = None
    layout: Layout | None = None
    since_walk: int = 0
    problems_logged: bool = False
    polls: int = 0
    failures: int = 0


class SnmpPoller:
    """Polls `targets`; hands batches and events to `on_batches` / `on_events` callbacks."""

    def __init__(self, targets: Sequence[PollTarget], client: SnmpClient, *,
                 on_batches: Callable[[str, list[Batch]], None], on_events: Callable[[list[Event]], None],
                 profiles: Mapping[str, Profile] | None = None, max_concurrency: int = 64,
                 clock: Callable[[], int] = time.time_ns, source: str = "snmp", rewalk_every: int = 20) -> None:
        self.client = client
        self.profiles = profiles if profiles is not None else default_profiles()
        self.states = [_State(t) for t in targets]
        self.on_batches = on_batches
        self.on_events = on_events
        self.max_concurrency = max_concurrency
        self.clock = clock
        self.source = source
        self.rewalk_every = rewalk_every  # slow cadence: walk the tables again every N polls (new rows)
        self._sem: asyncio.Semaphore | None = None
        from dcops.metrics import current

        m = current()
        self._m_polls, self._m_errors = m.get("polls").labels(collector=source), m.get("poll_errors").labels(collector=source)
        self._m_seconds = m.get("poll_seconds").labels(collector=source)

    def health(self):
        """/healthz: failing while no SNMP agent answers (after each was polled at least once)."""
        from dcops.metrics import Check

        polled = [st for st in self.states if st.up is not None]
        up = sum(1 for st in polled if st.up)
        if polled and len(polled) == len(self.states) and up == 0:
            return Check(False, f"none of {len(self.states)} SNMP agents answers")
        return Check(True, f"{up} of {len(self.states)} SNMP agents answer ({len(self.states) - len(polled)} not polled yet)")

    def _event(self, st: _State, kind: str, severity: str, message: str, **attrs) -> Event:
        target = {k: str(v) for k, v in st.target.tags.items() if v}
        attrs = {"agent": f"{st.target.snmp.host}:{st.target.snmp.port}", **attrs}
        return Event(self.clock(), kind, self.source, target, severity, message, attrs)

    async def poll_one(self, st: _State) -> PollResult:
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.max_concurrency)
        async with self._sem:
            if st.session is None:
                try:
                    st.session = await self.client.session(st.target.snmp)
                except SnmpError as exc:
                    res = PollResult(st.target.name, False, error=str(exc))
                    self._after(st, res)
                    return res
            layout = st.layout if st.since_walk < self.rewalk_every else None
            try:
                res = await poll_agent(self.client, st.target.snmp, self.profiles, st.session, st.profile, layout)
            except Exception as exc:  # a bug or a library surprise must not stop the other agents
                log.exception("SNMP poll of %s failed unexpectedly", st.target.name)
                res = PollResult(st.target.name, False, error=f"internal error: {type(exc).__name__}: {exc}")
            st.since_walk = st.since_walk + 1 if layout is not None else 0
            st.layout = res.layout if res.ok else None
        self._after(st, res)
        return res

    def _after(self, st: _State, res: PollResult) -> None:
        st.polls += 1
        self._m_polls.inc()
        self._m_seconds.observe(res.duration_s)
        if not res.ok:
            self._m_errors.inc()
        events: list[Event] = []
        dev = st.target.name
        if res.ok:
            if st.profile is None and res.profile_obj is not None:
                st.profile = res.profile_obj
            if st.up is False:
                log.info("SNMP agent of %s answers again", dev)
                events.append(self._event(st, "agent_recovered", Severity.CLEARED, f"SNMP agent of {dev} answers again"))
            st.up = True
            if (res.problems or res.missing) and not st.problems_logged:
                if res.problems:
                    log.warning("SNMP agent of %s: %d value problem(s), e.g. %s", dev, len(res.problems), res.problems[0])
                if res.missing:  # sentinels, unmapped states, impossible values: not readings, but not silent
                    log.info("SNMP agent of %s: %d sensor(s) without a usable value, e.g. %s", dev, len(res.missing), res.missing[0])
                st.problems_logged = True
            batches = readings_to_batches(res.readings, st.target.tags, self.clock()) if res.readings else []
            if batches:
                self.on_batches(dev, batches)
        else:
            st.failures += 1
            if st.up is not False:
                log.warning("SNMP agent of %s unreachable: %s", dev, res.error)
                events.append(self._event(st, "agent_unreachable", Severity.MAJOR, f"SNMP agent of {dev} unreachable: {res.error}",
                                          reason="auth" if res.auth_error else "no_answer", error=res.error or ""))
            else:
                log.debug("SNMP agent of %s still unreachable: %s", dev, res.error)
            st.up = False
            st.profile = st.profile if res.auth_error else None  # re-detect after an outage (firmware swap)
        if events:
            self.on_events(events)

    async def open_sessions(self) -> None:
        """Sessions for every target not yet opened, registered with the engine in one go."""
        new = [st for st in self.states if st.session is None]
        if not new:
            return
        opened = await asyncio.gather(*(self.client.session(st.target.snmp) for st in new), return_exceptions=True)
        for st, s in zip(new, opened):
            if not isinstance(s, BaseException):
                st.session = s
        self.client.prepare([st.session for st in new if st.session is not None])

    async def poll_round(self) -> list[PollResult]:
        """Poll every target once, concurrently (bounded)."""
        await self.open_sessions()
        return list(await asyncio.gather(*(self.poll_one(st) for st in self.states)))

    async def run(self, stop: Callable[[], bool], tick_s: float = 0.2) -> None:
        """Poll each target every `snmp.interval_s` until `stop()` is true."""

        async def loop(st: _State) -> None:
            next_due = time.monotonic()
            while not stop():
                now = time.monotonic()
                if now < next_due:
                    await asyncio.sleep(min(tick_s, next_due - now))
                    continue
                await self.poll_one(st)
                next_due += st.target.snmp.interval_s
                if next_due < time.monotonic():
                    next_due = time.monotonic() + st.target.snmp.interval_s  # overran: skip, don't burst

        await self.open_sessions()
        await asyncio.gather(*(loop(st) for st in self.states))


def run_poller(targets: Sequence[PollTarget], bus: Bus, stop_event: threading.Event, site: str = "",
               max_concurrency: int = 64, profiles: Mapping[str, Profile] | None = None) -> None:
    """Blocking: poll `targets` and publish to `bus` until `stop_event` is set (own event loop)."""
    if site:
        targets = [PollTarget(t.name, {"site": site, **dict(t.tags)}, t.snmp) for t in targets]

    def on_batches(device: str, batches: list[Batch]) -> None:
        for b in batches:
            publish_batch(bus, b, key=device)

    def on_events(events: list[Event]) -> None:
        publish_events(bus, events, key=events[0].target.get("device", ""))

    from dcops.metrics import current

    m = current()

    async def main() -> None:
        client = SnmpClient()
        try:
            poller = SnmpPoller(targets, client, on_batches=on_batches, on_events=on_events,
                                profiles=profiles, max_concurrency=max_concurrency)
            m.health.add("snmp", poller.health)
            await poller.run(stop_event.is_set)
        finally:
            m.health.remove("snmp")
            client.close()

    asyncio.run(main())


def targets_from_site(cfg: SiteConfig) -> list[PollTarget]:
    """Every device with an `snmp:` section, tagged with its place in the topology."""
    out: list[PollTarget] = []
    for hall in cfg.halls:
        base = {"site": cfg.site, "hall": hall.name}
        for dev in (*hall.upses, *hall.pdus, *hall.cooling_units, *hall.sensors):
            if dev.snmp is not None:
                out.append(PollTarget(dev.name, {**base, "device": dev.name}, dev.snmp))
        for row in hall.rows:
            for rack in row.racks:
                for dev in (*rack.rack_pdus, *rack.sensors):
                    if dev.snmp is not None:
                        out.append(PollTarget(dev.name, {**base, "row": row.name, "rack": rack.name, "device": dev.name}, dev.snmp))
    return out


def run_role(cfg: SiteConfig, stop_event: threading.Event) -> None:
    """The `poller` role: poll every SNMP device of the site config until `stop_event` is set."""
    from dcops.wiring import open_bus

    from dcops.metrics import Check, current

    targets = targets_from_site(cfg)
    if not targets:
        log.warning("poller role: no device in %s has an snmp section; nothing to poll", cfg.site)
        current().health.add("snmp", lambda: Check(False, f"no device in site {cfg.site!r} has an snmp section"))
        stop_event.wait()
        current().health.remove("snmp")
        return
    bus = open_bus(cfg.settings.bus, client_id="snmp-poller")
    try:
        run_poller(targets, bus, stop_event)
    finally:
        bus.flush()
        bus.close()
