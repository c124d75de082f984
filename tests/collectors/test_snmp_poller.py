"""Poller logic without a network: a scripted client stands in for the pysnmp adapter.
Layouts (walk once, then one fixed-size request), re-walks, outage events, profile choice."""

from __future__ import annotations

import asyncio

import pytest

from dcops.collectors.snmp_engine import SnmpAuthError, SnmpTimeout
from dcops.collectors.snmp_poller import PollTarget, SnmpPoller, poll_agent, targets_from_site
from dcops.site import SnmpTarget, site_from_text

OUT_V = "1.3.6.1.2.1.33.1.4.4.1.2"
CHARGE = "1.3.6.1.2.1.33.1.2.4.0"


class ScriptedClient:
    """Answers from `self.rows` / `self.scalars`; records the calls; can fail on demand."""

    def __init__(self):
        self.rows = {"1": 230, "2": 231}
        self.scalars = {CHARGE: 90, "1.3.6.1.2.1.1.2.0": "1.3.6.1.4.1.8072.3.2.10", "1.3.6.1.2.1.1.1.0": "Linux"}
        self.calls = []
        self.fail: Exception | None = None
        self.prepared = 0

    async def session(self, target):
        return f"{target.host}:{target.port}"

    def prepare(self, sessions):
        self.prepared += len(sessions)

    async def get(self, s, oids):
        self.calls.append(("get", tuple(oids)))
        if self.fail:
            raise self.fail
        return {o: self.scalars[o] for o in oids if o in self.scalars}

    async def probe(self, s, roots):
        self.calls.append(("probe",))
        return frozenset(r for r in roots if r == "1.3.6.1.2.1.33.1.1")

    async def walk(self, s, roots, scalars=(), fixed_reps=None, **kw):
        self.calls.append(("walk", fixed_reps))
        if self.fail:
            raise self.fail
        rows = dict(sorted(self.rows.items())[:fixed_reps] if fixed_reps else self.rows.items())
        tables = {r: (dict(rows) if r == OUT_V else {}) for r in roots}
        return tables, [], {o: self.scalars[o] for o in scalars if o in self.scalars}


def _poller(client, n=1, **kw):
    targets = [PollTarget(f"UPS-{i}", {"site": "s", "hall": "H1", "device": f"UPS-{i}"}, SnmpTarget(port=1000 + i, profile="ups-mib"))
               for i in range(n)]
    batches, events = [], []
    p = SnmpPoller(targets, client, on_batches=lambda d, bs: batches.append((d, bs)), on_events=events.extend, **kw)
    return p, batches, events


def test_walk_once_then_one_fixed_request_and_rewalk_on_cadence():
    c = ScriptedClient()
    p, batches, _ = _poller(c, rewalk_every=3)

    async def go():
        for _ in range(5):
            await p.poll_round()
    asyncio.run(go())
    assert [x for x in c.calls] == [("walk", None), ("walk", 2), ("walk", 2), ("walk", 2), ("walk", None)]
    assert c.prepared == 1
    last = batches[-1][1][0]
    assert list(last.tags["index"]) == ["", "1", "2"] and last.fields["ups_output_voltage_v"][2] == 231


def test_vanished_row_triggers_a_walk_and_new_rows_appear_after_it():
    c = ScriptedClient()
    p, batches, _ = _poller(c, rewalk_every=100)

    async def go():
        await p.poll_round()
        c.rows = {"1": 229}                 # row 2 gone: layout no longer matches
        await p.poll_round()
        c.rows = {"1": 229, "2": 232, "3": 233}
        await p.poll_round()                # walk (layout dropped): finds the new rows
        await p.poll_round()
    asyncio.run(go())
    assert [x[1] for x in c.calls] == [None, 2, None, 3]
    assert list(batches[-1][1][0].tags["index"]) == ["", "1", "2", "3"]


def test_outage_is_one_event_and_recovery_another():
    c = ScriptedClient()
    p, batches, events = _poller(c, n=2)

    async def go():
        await p.poll_round()
        c.fail = SnmpTimeout("127.0.0.1:1000: no answer (timed out)")
        await p.poll_round()
        await p.poll_round()
        c.fail = None
        await p.poll_round()
    asyncio.run(go())
    kinds = [(e.kind, e.target["device"], e.severity) for e in events]
    assert kinds == [("agent_unreachable", "UPS-0", "major"), ("agent_unreachable", "UPS-1", "major"),
                     ("agent_recovered", "UPS-0", "cleared"), ("agent_recovered", "UPS-1", "cleared")]
    assert events[0].attributes["reason"] == "no_answer" and events[0].attributes["agent"] == "127.0.0.1:1000"
    assert len(batches) == 4  # 2 agents x 2 good rounds; failed polls publish nothing


def test_auth_failure_event_says_so():
    c = ScriptedClient()
    c.fail = SnmpAuthError("127.0.0.1:1000: SNMPv3 authentication failed (wrong auth key or auth protocol)")
    p, _, events = _poller(c)
    asyncio.run(p.poll_round())
    assert events[0].kind == "agent_unreachable" and events[0].attributes["reason"] == "auth"
    assert "authentication failed" in events[0].message


def test_auto_profile_by_probe_and_unknown_device():
    c = ScriptedClient()
    res = asyncio.run(poll_agent(c, SnmpTarget(port=1)))
    assert res.ok and res.profile == "ups-mib" and ("probe",) in c.calls
    c2 = ScriptedClient()
    c2.probe = lambda s, roots: asyncio.sleep(0, frozenset())
    res2 = asyncio.run(poll_agent(c2, SnmpTarget(port=1)))
    assert not res2.ok and "no profile matches" in res2.error and "8072.3.2.10" in res2.error


def test_targets_from_site_tags_each_device():
    cfg = site_from_text("""
site: s1
halls:
  - name: H1
    upses: [{name: UPS-A, capacity_kw: 500, snmp: {host: 10.0.0.5, community: c1, profile: apc-ups}}]
    pdus: [{name: PDU-A, ups: UPS-A, capacity_kw: 100}]
    rows:
      - name: R1
        racks:
          - name: R1-01
            feeds: {A: PDU-A}
            servers: [{name: s1, kind: cpu_server, psus: [A]}]
            rack_pdus: [{name: R1-01-PA, feed: A, snmp: {host: 10.0.1.7, version: "3", user: mon, auth_key: k1234567, priv_key: p1234567}}]
""")
    ts = {t.name: t for t in targets_from_site(cfg)}
    assert set(ts) == {"UPS-A", "R1-01-PA"}
    assert dict(ts["UPS-A"].tags) == {"site": "s1", "hall": "H1", "device": "UPS-A"}
    assert dict(ts["R1-01-PA"].tags) == {"site": "s1", "hall": "H1", "row": "R1", "rack": "R1-01", "device": "R1-01-PA"}
    assert ts["R1-01-PA"].snmp.version == "3" and ts["UPS-A"].snmp.profile == "apc-ups"


def test_an_unexpected_exception_is_contained_to_its_agent():
    c = ScriptedClient()
    p, batches, events = _poller(c, n=2)
    real_walk = c.walk

    async def flaky_walk(s, roots, **kw):
        if s.endswith(":1000"):
            raise RuntimeError("library surprise")
        return await real_walk(s, roots, **kw)
    c.walk = flaky_walk
    results = asyncio.run(p.poll_round())
    assert [r.ok for r in results] == [False, True]
    assert "internal error: RuntimeError" in results[0].error
    assert [(e.kind, e.target["device"]) for e in events] == [("agent_unreachable", "UPS-0")]
    assert [d for d, _ in batches] == ["UPS-1"]
