"""Power domains: the alerter partitioned without losing a root that another hall shares.

On the demo site each hall has its own UPSes, so its three halls are three domains; re-feed one
of H2's PDUs from an H1 UPS and H1 and H2 become one. Two alerter workers that split the demo's
halls by domain open each incident once, with the root a single alerter finds."""

from __future__ import annotations

from pathlib import Path

import pytest

from dcops.domains import DomainShare, domain_share, power_domains
from dcops.site import load_site
from dcops.topology import Inventory

DEMO = Path(__file__).resolve().parents[1] / "examples" / "demo-site.yaml"


@pytest.fixture(scope="module")
def demo_site():
    return load_site(DEMO)


def _feed_from(site, pdu: str, ups: str):
    """The site with `pdu` fed from `ups` (which may stand in another hall)."""
    halls = tuple(h.model_copy(update={"pdus": tuple(p.model_copy(update={"ups": ups}) if p.name == pdu else p
                                                     for p in h.pdus)}) for h in site.halls)
    return site.model_copy(update={"halls": halls})


def test_each_hall_with_its_own_power_and_cooling_is_a_domain(demo_site):
    inv = Inventory(demo_site)
    domains = power_domains(inv)
    assert set(domains.values()) == {"H1", "H2", "H3"}
    assert set(domains) == set(inv.components)
    for name in ("UPS-H1-A", "PDU-H1-R1-A", "CRAC-H1-1", "H1-R1-01"):
        assert domains[name] == "H1"
    for c in inv.components.values():  # every root correlation could find is in the alarm's domain
        assert {domains[u] for u in inv.upstream(c.name)} <= {domains[c.name]}


def test_a_ups_feeding_two_halls_joins_them_into_one_domain(demo_site):
    pdu = next(p.name for p in demo_site.halls[1].pdus)
    site = _feed_from(demo_site, pdu, "UPS-H1-A")
    from dcops.site import _cross_check

    assert not _cross_check(site)  # a PDU may be fed from another hall's UPS
    inv = Inventory(site)
    domains = power_domains(inv)
    assert set(domains.values()) == {"H1+H2", "H3"}
    assert domains[pdu] == domains["UPS-H1-A"] == domains["H2-R1-01"] == "H1+H2"
    assert any(inv.get(r).hall == "H2" for r in inv.downstream("UPS-H1-A") if inv.get(r).kind == "rack")
    share = DomainShare(inv, ["H1+H2"])
    assert share.owns("UPS-H1-A") and share.owns(pdu) and not share.owns("UPS-H3-A")
    with pytest.raises(KeyError, match="H1"):
        DomainShare(inv, ["H1"])  # H1 is no longer a domain of its own
    assert domain_share(inv, " H1+H2 , H3").domains == {"H1+H2", "H3"} and domain_share(inv, "") is None


def _incidents(alerter, inv):
    from dcops.alerts.storage.repository import Repository

    repo = Repository(alerter.engine, inv)
    comp = {a.id: a.component for a in repo.list_alarms(limit=1_000_000)}
    return sorted((i.root_component, tuple(sorted({comp[a] for a in i.alarm_ids if a in comp})))
                  for i in repo.list_incidents(limit=1_000_000))


@pytest.mark.slow
def test_two_alerter_workers_split_the_demo_halls_and_open_each_incident_once(demo_site, tmp_path):
    """The production stages (evaluation harness) on the demo site with one of H2's PDUs fed from
    UPS-H1-A, so H1+H2 is one domain and H3 another; a single alerter and two domain workers read
    the same bus. UPS-H1-A losing its output reaches both halls: one incident, in one worker."""
    from dcops.evaluation.runner import EvalOptions, OutageRun

    pdu = next(p.name for p in demo_site.halls[1].pdus)
    run = OutageRun(_feed_from(demo_site, pdu, "UPS-H1-A"), EvalOptions(seed=3, warmup_s=30.0, analytics=False))
    shares = [DomainShare(run.inv, ["H1+H2"]), DomainShare(run.inv, ["H3"])]
    dbs = [f"sqlite:///{tmp_path}/alerter-{i}.db" for i in range(2)]
    workers = [run._alerter(db, True, group=f"alerter-{i}", domains=share)
               for i, (db, share) in enumerate(zip(dbs, shares))]

    def process_workers():
        for w in workers:
            while w.process_once(timeout_s=0.0):
                pass

    try:
        run.run_for(30.0, on_step=process_workers)
        run.sim.inject("ups_output_lost", "UPS-H1-A", duration_s=None)
        run.sim.inject("crac_failure", "CRAC-H2-1", duration_s=None)
        run.sim.inject("pdu_breaker_trip", "PDU-H3-R1-A", duration_s=None)
        run.run_for(90.0, on_step=process_workers)
        process_workers()
        single = _incidents(run.alerter, run.inv)
        split = [_incidents(w, run.inv) for w in workers]
        assert {"UPS-H1-A", "CRAC-H2-1", "PDU-H3-R1-A"} <= {r for r, _ in single}
        assert sorted(split[0] + split[1]) == single  # each incident once, same root, same members
        ups = [members for root, members in split[0] if root == "UPS-H1-A"]
        assert len(ups) == 1 and {run.inv.get(m).hall for m in ups[0]} == {"H1", "H2"}  # a cross-hall root kept
        domains = power_domains(run.inv)
        assert {domains[r] for r, _ in split[0]} == {"H1+H2"} and {domains[r] for r, _ in split[1]} == {"H3"}

        # a restarted worker takes back only its own domains' alarms and incidents from the database
        from dcops.alerts.service import Alerter

        for share, owned in ((shares[0], True), (shares[1], False)):
            again = Alerter(run.bus, run.inv, db_url=dbs[0], group="restarted", outbox=False, escalation=False,
                            domains=share, clock=lambda: run.sim.now_ns / 1e9, time_source="data").start()
            try:
                roots = {i.root_component for i in again.pipeline.incidents.values()}
                assert ("UPS-H1-A" in roots) is owned and bool(again.pipeline.manager.alarms) is owned
            finally:
                again.close()
    finally:
        for w in workers:
            w.close()
        run.close()
