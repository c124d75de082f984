"""`dcops eval outages`: every scenario of a file through the production pipeline, one report.

    report = evaluate(site_cfg, scenario_file, EvalOptions(seed=1), progress=print_to_stderr)

Scenarios run one after another, each on a fresh simulated site with the same seed, so a
scenario's result does not depend on the others or on their order.
"""

from __future__ import annotations

import time
from typing import Callable

from dcops.evaluation.runner import EvalOptions, run_scenario
from dcops.evaluation.scenarios import ScenarioFile

__all__ = ["EvalError", "evaluate", "progress_line"]


class EvalError(RuntimeError):
    """A scenario could not run; the message names it and what went wrong."""


def evaluate(site, scenarios: ScenarioFile, opts: EvalOptions = EvalOptions(),
             progress: Callable[[str], None] | None = None, only: set[str] | None = None) -> dict:
    from dcops.alerts.runbooks.loader import load_runbooks

    runbooks = load_runbooks()
    out = []
    todo = [s for s in scenarios.scenarios if only is None or s.name in only]
    for k, sc in enumerate(todo, 1):
        t0, c0 = time.monotonic(), time.process_time()
        try:
            entry = run_scenario(site, sc, opts, runbooks=runbooks)
        except Exception as exc:  # a site the simulator cannot model, a bug: name the scenario, keep the cause
            raise EvalError(f"scenario {sc.name!r} failed on site {getattr(site, 'site', '?')!r}: "
                            f"{type(exc).__name__}: {exc}") from exc
        out.append(entry)
        if progress is not None:
            progress(progress_line(k, len(todo), entry, time.monotonic() - t0, time.process_time() - c0))
    return {"seed": opts.seed, "warmup_s": opts.warmup_s, "interval_s": opts.interval_s,
            "correlation": opts.correlation, "analytics": opts.analytics, "scenarios": out}


def progress_line(k: int, n: int, entry: dict, wall_s: float, cpu_s: float) -> str:
    roots = ", ".join(sorted({i["root_component"] for i in entry["incidents"]})[:4])
    more = "" if len({i["root_component"] for i in entry["incidents"]}) <= 4 else ", ..."
    return (f"[{k}/{n}] {entry['name']}: {entry['duration_s']:g} s simulated in {wall_s:.1f} s "
            f"(cpu {cpu_s:.1f} s); {entry['raw_alarms']} raw alarms -> {len(entry['incidents'])} incident(s)"
            f"{' (' + roots + more + ')' if roots else ''}, {entry['pages']} page(s)")
