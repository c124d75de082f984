"""Outage-response evaluation: scenario files run through the production pipeline on simulated
time (`dcops eval outages`), and the judge that scores reports against the injected faults."""

from dcops.evaluation.outages import evaluate
from dcops.evaluation.runner import EvalOptions, OutageRun, run_scenario
from dcops.evaluation.scenarios import FaultSpec, ScenarioFile, ScenarioSpec, load_scenarios, parse_scenarios

__all__ = ["EvalOptions", "FaultSpec", "OutageRun", "ScenarioFile", "ScenarioSpec", "evaluate", "load_scenarios",
           "parse_scenarios", "run_scenario"]
