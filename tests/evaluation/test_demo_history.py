"""The demo's history: past incidents made by running the fault library through the alert
pipeline, placed over the past weeks, with (synthetic) operator response times."""

from __future__ import annotations

import time

import pytest

from dcops import dbschema
from dcops.evaluation import demo_history
from dcops.evaluation.demo_history import HistoryOptions, load_history

NS = 1_000_000_000
DAY_NS = 86400 * NS


@pytest.fixture(scope="module")
def history(small_site, tmp_path_factory):
    """The small site's history loaded into a fresh demo database (schema by the migrations)."""
    from dcops.alerts.storage.repository import Repository
    from dcops.alerts.storage.tables import open_engine
    from dcops.topology import build_inventory

    tmp = tmp_path_factory.mktemp("history")
    url = f"sqlite:///{tmp}/alerts.sqlite"
    dbschema.upgrade(url)
    now_ns = time.time_ns()
    n = load_history(small_site, url, tmp / "cache", now_ns)
    engine = open_engine(url, create_tables=False)
    yield {"n": n, "repo": Repository(engine, build_inventory(small_site)), "now_ns": now_ns, "url": url,
           "cache": tmp / "cache", "engine": engine}
    engine.dispose()


def test_history_spans_weeks_of_several_fault_types_with_response_times(history):
    incs = history["repo"].list_incidents(limit=10_000)
    assert len(incs) == history["n"] >= 20
    types = {i.labels["fault_type"] for i in incs}
    assert len(types) >= 8 and {"crac_failure", "gpu_xid79", "psu_failure"} <= types
    opened = [i.opened_ns for i in incs]
    assert max(opened) - min(opened) >= 14 * DAY_NS and max(i.resolved_ns for i in incs) < history["now_ns"]
    for i in incs:
        assert str(getattr(i.state, "value", i.state)) == "resolved"
        assert i.opened_ns < i.acknowledged_ns <= i.resolved_ns and i.acknowledged_by
    tta = sorted((i.acknowledged_ns - i.opened_ns) / NS for i in incs)
    assert 30 < tta[len(tta) // 2] < 3600  # minutes, not milliseconds nor days
    # nothing of the past is on the live NOC list
    assert history["repo"].list_alarms() == []


def test_history_page_has_mtta_mttr_and_recurring_offenders(history):
    from dcops.console import data_alarms
    from dcops.console.data import Context

    ctx = Context(None, history["repo"].inventory, alarms=history["repo"], clock=lambda: history["now_ns"] / NS)
    hist = data_alarms.incident_history(ctx, 30)
    daily = data_alarms.daily_response(hist)
    assert len(daily) >= 10 and daily["mtta_min"].notna().all() and daily["mttr_min"].notna().all()
    assert len(data_alarms.recurring_offenders(hist)) >= 1


def test_similar_incident_search_finds_a_past_one_of_the_same_type(history):
    from dcops.alerts.storage.tables import open_engine
    from dcops.console import data_alarms
    from dcops.console.data import Context
    from dcops.sim import Simulator
    from dcops.alerts.pipeline import AlertPipeline
    from dcops.alerts.storage.alerter_store import AlerterStore
    from dcops.alerts.rules.engine import default_rules
    from dcops.alerts.config import AlertingConfig
    from dcops.evaluation.runner import DEFAULT_ALERTING

    repo = history["repo"]
    inv = repo.inventory
    # a new XID 79 now, on a GPU the history never saw, through the same pipeline into the same database
    past_roots = {i.root_component for i in repo.list_incidents(limit=10_000)}
    gpu = next(a for a in inv.accel_ids if a not in past_roots and inv.get(a).attrs["vendor"] == "nvidia")
    sim = Simulator(repo.inventory.config, seed=9, start_ns=history["now_ns"])
    engine = open_engine(history["url"], create_tables=False)
    store = AlerterStore(engine)
    pipeline = AlertPipeline(inv, default_rules(), AlertingConfig.model_validate(DEFAULT_ALERTING), store)
    pipeline.load(sim.now_ns)
    cursor = 0
    for k in range(8):
        if k == 3:
            sim.inject("gpu_xid79", gpu)
        cursor = demo_history.step_pipeline(sim, pipeline, store, cursor)
    engine.dispose()
    new = next(i for i in repo.list_incidents(states=("open",)) if i.root_component == gpu)
    ctx = Context(None, inv, alarms=repo, clock=lambda: sim.now_ns / NS)
    similar = data_alarms.similar_incidents(ctx, new.id, data_alarms.incident_history(ctx, 30))
    assert len(similar)
    past = {i.id: i for i in repo.list_incidents(limit=10_000)}
    assert past[similar.iloc[0]["id"]].labels.get("fault_type") == "gpu_xid79"


def test_history_is_cached_and_deterministic(history, small_site, monkeypatch, tmp_path):
    cached = list(history["cache"].glob("history-*.sqlite"))
    assert len(cached) == 1

    def no_generate(*_a, **_k):
        raise AssertionError("the cached history was generated again")

    monkeypatch.setattr(demo_history, "generate", no_generate)
    url = f"sqlite:///{tmp_path}/again.sqlite"
    dbschema.upgrade(url)
    assert load_history(small_site, url, history["cache"], history["now_ns"]) == history["n"]
    other = HistoryOptions(seed=2)
    assert demo_history._cache_key(small_site, other) != demo_history._cache_key(small_site, HistoryOptions())


def test_same_seed_same_history(small_site, tmp_path):
    from dcops.alerts.storage.repository import Repository
    from dcops.alerts.storage.tables import open_engine

    def incidents(name: str, seed: int):
        url = f"sqlite:///{tmp_path}/{name}.sqlite"
        demo_history.generate(small_site, url, HistoryOptions(episodes=4, days=2, seed=seed))
        engine = open_engine(url, create_tables=False)
        try:
            return [(i.id, i.root_component, i.opened_ns, i.acknowledged_ns, i.acknowledged_by, i.resolved_ns)
                    for i in Repository(engine, None).list_incidents(limit=100)]
        finally:
            engine.dispose()

    first = incidents("a", 1)
    assert first and first == incidents("b", 1) and first != incidents("c", 2)
