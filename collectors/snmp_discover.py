"""`dcops snmp discover`: walk a device, say what we read from it and what we do not.

`discover(pairs)` is pure: given everything a walk returned ({oid: value}), it picks the
profile(s) exactly as the poller does, maps the readings (and the sensors answered without a
usable value, with the reason), and lists the numeric table columns that no profile reads but
look like sensors (a sibling text column or the values say so), with OIDs and sample values.
`starter_profile(...)` turns those columns into a YAML profile for the operator to finish:
metric guessed from the words, scale left for them to check against the MIB.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from dcops.collectors.snmp_mapping import Missing, Reading, map_snapshot_full, snapshot_from_pairs
from dcops.collectors.snmp_profiles import Profile, answered_probes, choose_profiles, combine, default_profiles

__all__ = ["Column", "Discovery", "discover", "starter_profile", "WALK_ROOTS"]

WALK_ROOTS = ("1.3.6.1.2.1.1", "1.3.6.1.2.1.33", "1.3.6.1.2.1.47.1.1.1.1", "1.3.6.1.2.1.99", "1.3.6.1.4.1")
SENSOR_ROOTS = ("1.3.6.1.2.1.33.", "1.3.6.1.2.1.99.", "1.3.6.1.4.1.")
NOT_SENSORS = ("1.3.6.1.4.1.2021.", "1.3.6.1.4.1.8072.")  # net-snmp's own agent tables
SYS_DESCR, SYS_OBJECT_ID = "1.3.6.1.2.1.1.1.0", "1.3.6.1.2.1.1.2.0"

# words in a column's neighbourhood -> the metric a starter profile proposes
GUESSES = (
    (r"(?i)humid|\brh\b", "env_humidity_pct"), (r"(?i)dew", "env_dewpoint_degc"), (r"(?i)temp|degc|celsius", "env_temp_degc"),
    (r"(?i)volt|\bv\b", "pdu_voltage_v"), (r"(?i)current|amp|\ba\b", "pdu_current_a"), (r"(?i)apparent|\bva\b", "pdu_apparent_power_va"),
    (r"(?i)power|watt|\bw\b", "pdu_power_w"), (r"(?i)freq|hz", "pdu_frequency_hz"), (r"(?i)load|percent", "pdu_load_pct"),
    (r"(?i)energy|kwh", "pdu_energy_wh_total"),
)
_SENSORISH = re.compile(r"(?i)temp|humid|volt|current|amp|power|watt|freq|load|energy|sensor|probe|phase|outlet|inlet|battery|kwh|hz")


@dataclass(frozen=True)
class Column:
    oid: str
    rows: int
    samples: tuple[tuple[str, object], ...]  # (row suffix, value)
    label: str  # text of a sibling column in the same row (what the device calls it), or ""
    guess: str | None  # proposed metric


@dataclass
class Discovery:
    sys_object_id: str
    sys_descr: str
    profiles: list[str]
    readings: list[Reading] = field(default_factory=list)
    missing: list[Missing] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    unmapped: list[Column] = field(default_factory=list)


def _split(oid: str) -> tuple[str, str]:
    """(column, row suffix) for a table cell: the column is the OID up to the entry's column arc.
    Heuristic: tables are <...>.<entry=1>.<column>.<index...>; the last ".1.<col>." decides."""
    parts = oid.split(".")
    for i in range(len(parts) - 2, 7, -1):
        if parts[i - 1] == "1" and i + 1 < len(parts):
            return ".".join(parts[:i + 1]), ".".join(parts[i + 1:])
    return ".".join(parts[:-1]), parts[-1]


def _numeric(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def discover(pairs: dict[str, object], profiles=None, max_columns: int = 40) -> Discovery:
    profiles = profiles if profiles is not None else default_profiles()
    oid, descr = str(pairs.get(SYS_OBJECT_ID, "")), str(pairs.get(SYS_DESCR, ""))
    keys = sorted(pairs)
    probes = answered_probes(profiles, lambda r: any(k.startswith(r + ".") for k in keys))
    chosen = choose_profiles(profiles, oid, descr, probes)
    d = Discovery(oid, descr, [p.name for p in chosen])
    profile: Profile | None = combine(chosen)
    read_roots: tuple[str, ...] = ()
    if profile is not None:
        d.readings, d.missing, d.problems = map_snapshot_full(profile, snapshot_from_pairs(profile, pairs))
        read_roots = tuple(s.oid for s in profile.sensors)
    columns: dict[str, dict[str, object]] = {}
    for k, v in pairs.items():
        if not k.startswith(SENSOR_ROOTS) or k.startswith(NOT_SENSORS):
            continue
        col, row = _split(k)
        columns.setdefault(col, {})[row] = v
    texts: dict[tuple[str, str], str] = {}  # (table, row) -> first text cell
    for col, rows in columns.items():
        table = col.rsplit(".", 1)[0]
        for row, v in rows.items():
            if isinstance(v, str) and v.strip() and not v.strip().lstrip("-").replace(".", "").isdigit():
                texts.setdefault((table, row), v.strip()[:40])
    mapped_tables = {c.rsplit(".", 1)[0] for c in columns
                     if any(c == r or c.startswith(r + ".") or r.startswith(c + ".") for r in read_roots)}
    for col, rows in sorted(columns.items(), key=lambda kv: [int(x) for x in kv[0].split(".")]):
        table = col.rsplit(".", 1)[0]
        if table in mapped_tables:
            continue  # thresholds and states beside what we read
        nums = [(r, v) for r, v in rows.items() if _numeric(v)]
        if not nums or len(nums) < len(rows) or all(v in (0, 1, 2) for _, v in nums):
            continue  # text, flags and enums are not sensors
        if all(str(v) == r.rsplit(".", 1)[-1] for r, v in nums):
            continue  # an index column
        label = next((texts[(table, r)] for r, _ in nums if (table, r) in texts), "")
        if not (_SENSORISH.search(label) or len({v for _, v in nums}) > 1):
            continue
        guess = next((m for rx, m in GUESSES if re.search(rx, label)), None)
        d.unmapped.append(Column(col, len(nums), tuple(nums[:3]), label, guess))
        if len(d.unmapped) >= max_columns:
            break
    return d


def starter_profile(d: Discovery, name: str) -> str:
    """A profile YAML to finish by hand: the unmapped columns, metric guessed, scale to check."""
    prefix = ".".join(d.sys_object_id.lstrip(".").split(".")[:8]) if d.sys_object_id else ""
    lines = [f"name: {name}",
             f"description: \"{d.sys_descr[:70].replace(chr(34), '')} (starter profile from dcops snmp discover; finish it)\"",
             "mib: \"\"   # the MIB and version you checked units, scale and index structure against",
             "verified: []   # recordings or devices it was checked against",
             "match:",
             f"  sysobjectid: [{prefix}]" if prefix else "  sysobjectid: []",
             f"  probes: [{d.unmapped[0].oid}]" if d.unmapped else "  probes: []",
             "priority: 20", "columns:"]
    for c in d.unmapped:
        sample = ", ".join(f"{r}={v}" for r, v in c.samples)
        head = f"  # {c.label or 'no label'}: {c.rows} rows, e.g. {sample}; check the scale (tenths? hundredths?) in the MIB"
        body = f"  - {{oid: {c.oid}, metric: {c.guess}, scale: 1.0, index: \"{{suffix}}\", descr: \"{c.label or 'row'} {{suffix}}\"}}"
        lines += [head, body if c.guess else "  # " + body.strip() + "   # no metric guessed: pick one from the catalogue"]
    if not any(c.guess for c in d.unmapped):
        lines.append("  []")
    return "\n".join(lines) + "\n"
