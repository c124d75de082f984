"""SNMP device profiles: which OIDs a device family answers and what they mean, as data.

A profile is a YAML file under `collectors/data/snmp/profiles/` (listed in `profiles.yaml`):

- `match`: `sysobjectid` prefixes and `sysdescr` regular expressions that pick the profile
  automatically, and an optional `probe` OID for standards-based agents (UPS-MIB cards behind
  a generic Linux sysObjectID): the profile applies when the probe answers.
- `extends`: other profiles whose sensors this one includes (e.g. a vendor UPS = UPS-MIB plus
  its own ambient probe).
- `scalars`: single instances (`oid` ends in `.0`), one reading each.
- `columns`: table columns, walked with GETBULK; every row is a reading. `suffix` (a regular
  expression over the row index, with named groups) selects rows; `index` and `descr` are
  templates over those groups, `{suffix}` and `{label}` (the value of `label_oid`); `factors`
  scale each row from other columns (divisor, decimal digits, ENTITY-SENSOR exponent); `select`
  picks the metric per row from another column (InRow units column, ENTITY-SENSOR type).

Every metric must be in the catalogue and every unit must convert (via `units.yaml`) to the
metric's canonical unit; loading fails naming file, line and field otherwise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, RootModel, field_validator

from dcops.catalogue import CANONICAL_UNITS, METRICS
from dcops.yamlconf import ConfigError, ConfigProblem, check_regex, load_yaml

__all__ = [
    "DATA_DIR", "Factor", "Profile", "Related", "Select", "Sensor", "Unit",
    "answered_probes", "choose_profile", "choose_profiles", "combine", "probes_for", "load_profiles", "match_profile", "default_profiles", "probe_order",
]

DATA_DIR = Path(__file__).resolve().parent / "data" / "snmp"
_OID = r"^[0-9]+(\.[0-9]+)+$"


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UnitModel(_M):
    unit: str
    factor: float = 1.0
    offset: float = 0.0


class RelatedModel(_M):
    oid: str = Field(pattern=_OID)
    suffix: str | None = None  # template over the row's groups; default: the row's suffix


class FactorModel(RelatedModel):
    op: Literal["divide", "multiply", "pow10neg", "signed_scale", "map"]
    map: dict[str, float] = Field(default_factory=dict)


class CaseModel(_M):
    metric: str | None = None  # None: rows with this selector value are skipped
    unit: str | None = None
    scale: float = 1.0
    index: str | None = None
    descr: str | None = None


class RequireModel(RelatedModel):
    values: tuple[str, ...]  # the row counts only when this column holds one of these
    reason: str = "sensor not connected"


class SelectModel(RelatedModel):
    cases: dict[str, CaseModel]
    by_label: dict[str, CaseModel] = Field(default_factory=dict)  # regex on the label -> case


class SensorModel(_M):
    oid: str = Field(pattern=_OID)
    metric: str | None = None
    scale: float = 1.0
    unit: str | None = None
    index: str | None = None
    descr: str = ""
    suffix: str | None = None
    label_oid: RelatedModel | None = None
    factors: tuple[FactorModel, ...] = ()
    select: SelectModel | None = None
    skip: tuple[float, ...] = ()  # raw values that mean "not available" (e.g. -1)
    values: dict[str, float] = Field(default_factory=dict)  # raw code -> value (states)
    require: RequireModel | None = None  # rows whose status column says "absent" are missing

    @field_validator("suffix")
    @classmethod
    def _regex(cls, v):
        if v is not None:
            from dcops.yamlconf import check_regex

            check_regex(v)
        return v


class MatchModel(_M):
    sysobjectid: tuple[str, ...] = ()
    sysdescr: tuple[str, ...] = ()
    probe: str | None = Field(None, pattern=_OID)  # a table/subtree that must answer
    probes: tuple[str, ...] = ()  # more of them: any one answering is enough

    @field_validator("probes")
    @classmethod
    def _oids(cls, v):
        for o in v:
            if not re.fullmatch(_OID, o):
                raise ValueError(f"{o!r} is not a numeric OID")
        return v


class ProfileModel(_M):
    name: str = Field(min_length=1)
    description: str = ""
    match: MatchModel = MatchModel()
    priority: int = 0
    standard: bool = False  # a standard MIB: the fallback for any device it answers on
    verified: tuple[str, ...] = ()  # recordings (../shared/data/snmprec names) it was checked against
    mib: str = ""  # where the OIDs, units and scales come from (MIB name and version)
    extends: tuple[str, ...] = ()
    scalars: tuple[SensorModel, ...] = ()
    columns: tuple[SensorModel, ...] = ()


class IndexModel(_M):
    profiles: tuple[str, ...]


# ---- the runtime vocabulary (frozen, no pydantic) -------------------------------------------

@dataclass(frozen=True)
class Unit:
    unit: str
    factor: float = 1.0
    offset: float = 0.0


@dataclass(frozen=True)
class Related:
    oid: str
    suffix: str | None = None


@dataclass(frozen=True)
class Factor:
    oid: str
    suffix: str | None
    op: str
    map: Mapping[str, float]


@dataclass(frozen=True)
class Case:
    metric: str | None
    convert: Unit
    scale: float
    index: str | None
    descr: str | None


@dataclass(frozen=True)
class Select:
    oid: str
    suffix: str | None
    cases: Mapping[str, Case]
    by_label: tuple[tuple[re.Pattern, Case], ...]


@dataclass(frozen=True)
class Require:
    oid: str
    suffix: str | None
    values: frozenset
    reason: str


@dataclass(frozen=True)
class Sensor:
    oid: str
    scalar: bool
    metric: str | None
    convert: Unit
    scale: float
    index: str
    descr: str
    suffix: re.Pattern | None
    label: Related | None
    factors: tuple[Factor, ...]
    select: Select | None
    skip: frozenset = frozenset()
    values: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    require: Require | None = None


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    sysobjectid: tuple[str, ...]
    sysdescr: tuple[re.Pattern, ...]
    probe: str | None
    priority: int
    sensors: tuple[Sensor, ...]
    probes: tuple[str, ...] = ()
    standard: bool = False
    verified: tuple[str, ...] = ()
    mib: str = ""

    @property
    def get_oids(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.oid for s in self.sensors if s.scalar))

    @property
    def walk_roots(self) -> tuple[str, ...]:
        roots: list[str] = []
        for s in self.sensors:
            if s.scalar:
                continue
            roots.append(s.oid)
            if s.label:
                roots.append(s.label.oid)
            roots.extend(f.oid for f in s.factors)
            if s.select:
                roots.append(s.select.oid)
            if s.require:
                roots.append(s.require.oid)
        return tuple(dict.fromkeys(roots))


# ---- loading ------------------------------------------------------------------------------------

def _convert(unit: str | None, metric: str | None, units: Mapping[str, Unit], where: str) -> Unit:
    if metric is None:
        return Unit("")
    if metric not in METRICS:
        raise ValueError(f"{where}: metric {metric!r} is not in the catalogue (dcops.catalogue)")
    want = METRICS[metric].unit
    if unit is None or unit == want:
        return Unit(want)
    if unit in CANONICAL_UNITS:
        raise ValueError(f"{where}: unit {unit!r} does not match metric {metric!r} ({want})")
    conv = units.get(unit)
    if conv is None:
        raise ValueError(f"{where}: unknown device unit {unit!r} (units.yaml has {sorted(units)})")
    if conv.unit != want:
        raise ValueError(f"{where}: unit {unit!r} converts to {conv.unit}, but metric {metric!r} is in {want}")
    return conv


def _case(c: CaseModel, units, where) -> Case:
    return Case(c.metric, _convert(c.unit, c.metric, units, where), c.scale, c.index, c.descr)


def _sensor(m: SensorModel, scalar: bool, units, where: str) -> Sensor:
    if m.metric is None and m.select is None:
        raise ValueError(f"{where}: give a metric or a select")
    select = None
    if m.select is not None:
        select = Select(
            m.select.oid, m.select.suffix,
            MappingProxyType({k: _case(c, units, f"{where}.select.cases.{k}") for k, c in m.select.cases.items()}),
            tuple((check_regex(k), _case(c, units, f"{where}.select.by_label.{k}")) for k, c in m.select.by_label.items()),
        )
    return Sensor(
        oid=m.oid, scalar=scalar, metric=m.metric,
        convert=_convert(m.unit, m.metric, units, where), scale=m.scale,
        index=m.index if m.index is not None else ("" if scalar else "{suffix}"),
        descr=m.descr, suffix=re.compile(m.suffix) if m.suffix else None,
        label=Related(m.label_oid.oid, m.label_oid.suffix) if m.label_oid else None,
        factors=tuple(Factor(f.oid, f.suffix, f.op, MappingProxyType(dict(f.map))) for f in m.factors),
        select=select, skip=frozenset(m.skip), values=MappingProxyType(dict(m.values)),
        require=Require(m.require.oid, m.require.suffix, frozenset(m.require.values), m.require.reason) if m.require else None,
    )


class UnitsModel(RootModel[dict[str, UnitModel]]):
    """units.yaml: unit name -> canonical unit, factor, offset."""


def _load_units(path: Path) -> dict[str, Unit]:
    units = load_yaml(path, UnitsModel).root  # a bad entry names file, line and field like every other file
    out = {}
    for name, u in units.items():
        if u.unit not in CANONICAL_UNITS:
            raise ConfigError([ConfigProblem(str(path), None, str(name), f"{u.unit!r} is not a canonical unit")])
        out[str(name)] = Unit(u.unit, u.factor, u.offset)
    return out


def load_profiles(data_dir: str | Path = DATA_DIR) -> dict[str, Profile]:
    """Read every profile listed in `profiles.yaml`; errors name file, line and field."""
    root = Path(data_dir)
    units = _load_units(root / "units.yaml")
    index = load_yaml(root / "profiles.yaml", IndexModel)
    models: dict[str, tuple[Path, ProfileModel]] = {}
    for fname in index.profiles:
        path = root / "profiles" / fname
        pm = load_yaml(path, ProfileModel)
        if pm.name in models:
            raise ConfigError([ConfigProblem(str(path), None, "name", f"profile {pm.name!r} is defined twice")])
        models[pm.name] = (path, pm)
    out: dict[str, Profile] = {}

    def sensors_of(name: str, seen: tuple[str, ...]) -> tuple[Sensor, ...]:
        path, pm = models[name]
        result: list[Sensor] = []
        for i, base in enumerate(pm.extends):
            if base not in models:
                raise ConfigError([ConfigProblem(str(path), None, f"extends.{i}", f"unknown profile {base!r}")])
            if base in seen:
                raise ConfigError([ConfigProblem(str(path), None, f"extends.{i}", f"profile {base!r} extends itself")])
            result.extend(sensors_of(base, seen + (base,)))
        for kind, scalar in (("scalars", True), ("columns", False)):
            for i, sm in enumerate(getattr(pm, kind)):
                try:
                    result.append(_sensor(sm, scalar, units, f"{kind}.{i}"))
                except ValueError as exc:
                    field, _, msg = str(exc).partition(": ")
                    raise ConfigError([ConfigProblem(str(path), None, field, msg)]) from None
        return tuple(result)

    for name, (path, pm) in models.items():
        out[name] = Profile(
            name=name, description=pm.description,
            sysobjectid=tuple(p.lstrip(".") for p in pm.match.sysobjectid),
            sysdescr=tuple(check_regex(r) for r in pm.match.sysdescr),
            probe=pm.match.probe, priority=pm.priority,
            sensors=sensors_of(name, (name,)),
            probes=tuple(dict.fromkeys(([pm.match.probe] if pm.match.probe else []) + list(pm.match.probes))),
            standard=pm.standard, verified=pm.verified, mib=pm.mib,
        )
    return out


@lru_cache(maxsize=1)
def default_profiles() -> Mapping[str, Profile]:
    return MappingProxyType(load_profiles(DATA_DIR))


def _identity_score(p: Profile, oid: str, descr: str) -> int | None:
    score = None
    for prefix in p.sysobjectid:
        if oid == prefix or oid.startswith(prefix + "."):
            score = max(score or 0, 1000 + len(prefix.split(".")))
    if any(r.search(descr or "") for r in p.sysdescr):
        score = max(score or 0, 500)
    return score


def match_profile(profiles: Mapping[str, Profile], sys_object_id: str, sys_descr: str) -> Profile | None:
    """The profile for an agent's identity alone: longest sysObjectID prefix, then sysDescr, then priority."""
    oid = (sys_object_id or "").strip().lstrip(".")
    best: tuple | None = None
    for p in profiles.values():
        score = _identity_score(p, oid, sys_descr)
        if score is not None:
            key = (score, p.priority, p.name)
            if best is None or key > best[0]:
                best = (key, p)
    return best[1] if best else None


def probe_order(profiles: Mapping[str, Profile]) -> list[Profile]:
    """Profiles that identify themselves by a probe OID, most specific (highest priority) first."""
    return sorted((p for p in profiles.values() if p.probes), key=lambda p: (-p.priority, p.name))


def probes_for(profiles: Mapping[str, Profile], sys_object_id: str = "", sys_descr: str = "") -> list[str]:
    """Every probe OID `choose_profiles` may look at (ask them all in one request)."""
    return list(dict.fromkeys(o for p in probe_order(profiles) for o in p.probes))


def choose_profiles(profiles: Mapping[str, Profile], sys_object_id: str, sys_descr: str,
                    probes_answered: set[str] | frozenset[str]) -> list[Profile]:
    """Auto-detection, degrading gracefully:

    1. vendor family by identity (longest sysObjectID prefix / sysDescr), confirmed by the
       family's probe tables where the profile has any (several models share a vendor prefix);
    2. else a vendor profile whose tables answer (a vendor MIB behind a generic identity);
    3. else every standard-MIB profile (UPS-MIB, ENTITY-SENSOR, ...) whose tables answer.
    An empty list: nothing known answers."""
    oid = (sys_object_id or "").strip().lstrip(".")
    answered = lambda p: not p.probes or any(o in probes_answered for o in p.probes)  # noqa: E731
    by_identity = sorted(((s, p.priority, p.name, p) for p in profiles.values() if not p.standard
                          for s in [_identity_score(p, oid, sys_descr)] if s is not None), reverse=True)
    standard = [p for p in probe_order(profiles) if p.standard and any(o in probes_answered for o in p.probes)]

    def with_standard(p: Profile) -> list[Profile]:
        # the standard MIBs the device also serves and the vendor profile does not already read
        have = {s.oid for s in p.sensors}
        return [p] + [q for q in standard if not {s.oid for s in q.sensors} <= have]

    for *_, p in by_identity:
        if answered(p):
            return with_standard(p)
    for p in probe_order(profiles):
        if not p.standard and any(o in probes_answered for o in p.probes):
            return with_standard(p)
    if standard:
        return standard
    return [by_identity[0][-1]] if by_identity else []  # identity alone: a family model we have not seen


def choose_profile(profiles: Mapping[str, Profile], sys_object_id: str, sys_descr: str,
                   probes_answered: set[str] | frozenset[str]) -> Profile | None:
    """`choose_profiles` as one profile (several standard ones combined)."""
    return combine(choose_profiles(profiles, sys_object_id, sys_descr, probes_answered))


def combine(chosen: list[Profile]) -> Profile | None:
    """Several profiles read as one ("ups-mib+entity-sensor"); an OID read once."""
    if not chosen:
        return None
    if len(chosen) == 1:
        return chosen[0]
    seen: set[str] = set()
    sensors = []
    for p in chosen:
        for s in p.sensors:
            if (s.oid, s.suffix.pattern if s.suffix else None) not in seen:
                seen.add((s.oid, s.suffix.pattern if s.suffix else None))
                sensors.append(s)
    return Profile("+".join(p.name for p in chosen), "; ".join(p.description for p in chosen), (), (), None,
                   max(p.priority for p in chosen), tuple(sensors), standard=all(p.standard for p in chosen),
                   verified=tuple(dict.fromkeys(v for p in chosen for v in p.verified)))


def answered_probes(profiles: Mapping[str, Profile], has_subtree) -> frozenset[str]:
    """The probe OIDs for which `has_subtree(oid)` is true (for recordings and tests)."""
    return frozenset(o for p in profiles.values() for o in p.probes if has_subtree(o))
