"""Telemetry around a past incident and the Markdown postmortem (timeline, root cause, steps
taken, the data behind its charts), from a simulated UPS-on-battery incident."""

from __future__ import annotations

import re

import numpy as np
import pytest

from dcops.alerts.storage.tables import open_engine
from dcops.alerts.history.analysis import incident_facts, telemetry_around, telemetry_signature
from dcops.alerts.history.postmortem import export_postmortem
from dcops.alerts.storage.repository import Repository
from dcops.alerts.runbooks.engine import RunbookEngine
from dcops.alerts.runbooks.executors import ExecutorConfig, ExecutorRuntime
from dcops.alerts.runbooks.loader import load_runbooks
from dcops.cli import main
from tests.runbooks.support import NS, SiteDriver


@pytest.fixture
def ups_incident(db_url, small_site):
    db = open_engine(db_url)
    site = SiteDriver(small_site, db, seed=5)
    repo = Repository(db, site.sim.inventory, clock=lambda: site.now_ns() / NS)
    eng = RunbookEngine(db, load_runbooks(), inventory=site.sim.inventory, store=site.store, repository=repo,
                        clock=site.now_ns,
                        executors=ExecutorRuntime(ExecutorConfig(allowed_commands={"shed_load": ("/bin/echo", "capped")})))
    eng.ensure_schema()
    site.step(30)
    site.sim.inject("ups_on_battery", "UPS-A", duration_s=240)
    site.step(6)
    [inc] = repo.list_incidents()
    repo.acknowledge_incident(inc.id, "alice")
    run = eng.start(inc.id, "ups-on-battery", user="alice", role="operator")
    eng.check(run.id, "runtime-left", user="alice", role="operator")
    eng.confirm(run.id, "generator-status", user="alice", role="operator", note="generator running, ATS on gen")
    eng.confirm(run.id, "notify-utility", user="alice", role="operator", note="utility ticket 7781")
    eng.request_approval(run.id, "shed-load", user="alice", role="operator")
    eng.approve(run.id, "shed-load", user="bob", role="operator")
    eng.execute(run.id, "shed-load", user="alice", role="operator")
    site.step(24)                                    # the UPS is back on utility; alarms clear
    yield db, site, inc.id, run.id
    db.dispose()


def test_telemetry_and_postmortem_export(ups_incident, db_url, tmp_path, capsys):
    db, site, iid, run_id = ups_incident
    [f] = incident_facts(db, site.sim.inventory)
    assert f.component == "UPS-A" and f.kind == "ups" and f.tta_s is not None
    series = {s.metric: s for s in telemetry_around(site.store, site.sim.inventory, f, before_s=300, after_s=300)}
    assert set(series) == {"ups_on_battery", "ups_battery_charge_pct", "ups_output_load_pct", "ups_output_voltage_v"}
    onb = series["ups_on_battery"]
    clean = onb.time_ns + 60 * NS <= f.opened_ns - 60 * NS   # windows ending before the UPS went on battery
    assert clean.sum() >= 3 and np.all(onb.values[clean] == 0) and np.nanmax(onb.values) > 0.5
    charge = series["ups_battery_charge_pct"]
    assert np.nanmin(charge.values) < charge.values[0]           # the battery discharged
    sig = telemetry_signature(list(series.values()), f.opened_ns)
    assert sig["ups_on_battery"] > 0 and sig["ups_battery_charge_pct"] < 0

    # the postmortem
    md = export_postmortem(db, iid, store=site.store, inventory=site.sim.inventory, before_s=300, after_s=300)
    assert md.startswith("# Postmortem: ")
    for heading in ("## Root cause", "## Timeline", "## Steps taken", "## Telemetry", "## Similar past incidents",
                    "## Audit"):
        assert heading in md
    assert "**commercialPowerFailure**" in md and "UPS-A" in md
    assert "UPS on battery (utility power lost) (runbook `ups-on-battery` v1): active" in md
    assert "utility ticket 7781" in md and "shed-load approved by bob" in md
    assert "| steps | Cap accelerator power on the UPS's feeds | done | alice |" in md
    assert "Audit log hash chain: intact" in md
    # the data behind the charts: one CSV block per series, parseable, with the incident's minutes
    blocks = re.findall(r"### (\w+) \(([^)]*)\).*?```csv\ntime_utc,time_ns,value\n(.*?)```", md, re.S)
    assert {b[0] for b in blocks} == {"ups_on_battery", "ups_battery_charge_pct", "ups_output_load_pct", "ups_output_voltage_v"}
    rows = [ln.split(",") for ln in dict((b[0], b[2]) for b in blocks)["ups_on_battery"].strip().splitlines()]
    assert len(rows) >= 8 and max(float(r[2]) for r in rows if r[2]) > 0.5
    timeline = md.split("## Timeline")[1].split("## Steps taken")[0]
    assert timeline.index("alarm_raised") < timeline.index("| runbook |") < timeline.index("alarm_cleared")

    # the same through the CLI, from the database alone (no telemetry store given)
    out = tmp_path / "pm.md"
    assert main(["incidents", "export", iid, "--db", db_url, "-o", str(out)]) == 0
    text = out.read_text()
    assert "## Steps taken" in text and "No telemetry available" in text
    assert main(["incidents", "export", "nope", "--db", db_url]) == 1
    assert "no incident 'nope'" in capsys.readouterr().err
