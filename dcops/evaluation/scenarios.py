"""Outage scenario files: what to inject, where and when, validated against a site.

    scenarios:
      - name: row-dark-then-ups
        duration_s: 1200          # simulated time after warm-up
        faults:
          - {at_s: 60, fault: pdu_breaker_trip, target: PDU-H2-R3-A}
          - {at_s: 63, fault: ups_on_battery, target: UPS-H2-B, duration_s: 300}

`load_scenarios(path, inventory)` validates the file's shape (file, line and field for every
error) and then every fault against the site: the fault type exists, the target is a component
of the site, of a kind the fault applies to (and of the right vendor for accelerator faults),
and the fault starts inside the scenario. Each problem names the scenario, the fault and the
target. `duration_s` of a fault: omitted = the fault type's default; `null` = until the end.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dcops.sim.faults import FAULT_TYPES
from dcops.topology import Inventory
from dcops.yamlconf import ConfigError, ConfigProblem, parse_yaml, read_config_text, validate_with_lines

__all__ = ["FaultSpec", "ScenarioSpec", "ScenarioFile", "load_scenarios", "parse_scenarios", "check_against_site"]

_DEFAULT = -1.0  # the fault type's default duration (the simulator's convention)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FaultSpec(_Model):
    at_s: Annotated[float, Field(ge=0)]
    fault: str
    target: str
    duration_s: Annotated[float, Field(gt=0)] | None = _DEFAULT

    @field_validator("duration_s", mode="before")
    @classmethod
    def _positive(cls, v):
        if v is not None and float(v) <= 0:
            raise ValueError("must be > 0 (omit it for the fault type's default, null for until the scenario ends)")
        return v


class ScenarioSpec(_Model):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    duration_s: Annotated[float, Field(gt=0, le=30 * 86400)]
    faults: tuple[FaultSpec, ...] = ()
    description: str = ""

    @field_validator("faults")
    @classmethod
    def _sorted(cls, v):
        return tuple(sorted(v, key=lambda f: f.at_s))


class ScenarioFile(_Model):
    scenarios: Annotated[tuple[ScenarioSpec, ...], Field(min_length=1)]

    @field_validator("scenarios")
    @classmethod
    def _unique(cls, v):
        seen: set[str] = set()
        for s in v:
            if s.name in seen:
                raise ValueError(f"scenario name {s.name!r} is used twice")
            seen.add(s.name)
        return v


def parse_scenarios(text: str, file: str = "<string>", inventory: Inventory | None = None) -> ScenarioFile:
    data, lines = parse_yaml(text, file)
    if data is None:
        raise ConfigError([ConfigProblem(file, None, "", "file is empty")])
    # keep the order the file gives (faults are sorted by time after validation)
    spec = validate_with_lines(ScenarioFile, data, lines, file)
    if inventory is not None:
        problems = check_against_site(spec, inventory, file, lines, data)
        if problems:
            raise ConfigError(problems)
    return spec


def load_scenarios(path: str | Path, inventory: Inventory | None = None) -> ScenarioFile:
    p = Path(path)
    return parse_scenarios(read_config_text(p), str(p), inventory)


def check_against_site(spec: ScenarioFile, inv: Inventory, file: str = "<string>",
                       lines: dict | None = None, data=None) -> list[ConfigProblem]:
    """Every fault's type and target checked against the site; one problem per bad fault."""
    lines = lines or {}
    problems: list[ConfigProblem] = []
    for si, sc in enumerate(spec.scenarios):
        raw_faults = _raw_faults(data, si)
        for fi, f in enumerate(sc.faults):
            ri = _raw_index(raw_faults, f, fi)
            loc = ("scenarios", si, "faults", ri)
            where = f"scenario {sc.name!r}, fault {f.fault} on {f.target!r}"
            msg = _fault_problem(f, inv, sc)
            if msg:
                problems.append(ConfigProblem(file, lines.get(loc) or lines.get(loc[:2]), ".".join(map(str, loc)),
                                              f"{where}: {msg}"))
    return problems


def _fault_problem(f: FaultSpec, inv: Inventory, sc: ScenarioSpec) -> str | None:
    ft = FAULT_TYPES.get(f.fault)
    if ft is None:
        return f"unknown fault type; known: {', '.join(sorted(FAULT_TYPES))}"
    try:
        comp = inv.resolve(f.target)
    except KeyError:
        return f"no component {f.target!r} in site {inv.site!r}"
    if comp.kind not in ft.target_kinds:
        return f"{f.fault} applies to {'/'.join(ft.target_kinds)} components; {comp.name!r} is a {comp.kind}"
    if ft.vendor and comp.attrs.get("vendor") != ft.vendor:
        return f"{f.fault} applies to {ft.vendor} accelerators; {comp.name!r} is {comp.attrs.get('vendor')}"
    if f.at_s >= sc.duration_s:
        return f"starts at {f.at_s:g} s, after the scenario's end ({sc.duration_s:g} s)"
    return None


def _raw_faults(data, si: int) -> list:
    try:
        return list(data["scenarios"][si].get("faults") or [])
    except (TypeError, KeyError, IndexError, AttributeError):
        return []


def _raw_index(raw: list, f: FaultSpec, default: int) -> int:
    """The fault's index in the file (faults are sorted by time after validation)."""
    for i, r in enumerate(raw):
        if isinstance(r, dict) and r.get("fault") == f.fault and r.get("target") == f.target \
                and float(r.get("at_s", -1)) == f.at_s:
            return i
    return default
