"""Columnar sample batches and discrete events: the data that moves between stages.

A `Batch` holds many rows of one measurement: a time column, one column per tag and one
float64 column per field (NaN where a row has no value for that field). Nothing on the hot
path creates one Python object per value; collectors build batches from arrays and the bus
and the store move them whole.

Events (XIDs, traps, breaker trips, agents that stop answering) are rare and irregular, so
they are plain frozen dataclasses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = ["Batch", "Event", "Severity", "concat_batches"]


def _as_str_column(values, n: int, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=object)
    if arr.ndim == 0:
        arr = np.full(n, str(arr.item()), dtype=object)
    if arr.shape != (n,):
        raise ValueError(f"tag column {name!r} has shape {arr.shape}, expected ({n},)")
    return arr


@dataclass(frozen=True, eq=False)
class Batch:
    """Rows of one measurement, stored column by column.

    `time_ns` is int64 nanoseconds since the epoch; `tags` maps tag names to object arrays of
    str; `fields` maps catalogue metric names to float64 arrays. All columns have one length.
    """

    measurement: str
    time_ns: np.ndarray
    tags: Mapping[str, np.ndarray]
    fields: Mapping[str, np.ndarray]

    def __post_init__(self) -> None:
        t = np.asarray(self.time_ns, dtype=np.int64)
        if t.ndim == 0:
            raise ValueError("time_ns must be an array")
        n = t.shape[0]
        tags = {k: _as_str_column(v, n, k) for k, v in self.tags.items()}
        fields = {}
        for k, v in self.fields.items():
            arr = np.asarray(v, dtype=np.float64)
            if arr.ndim == 0:
                arr = np.full(n, float(arr))
            if arr.shape != (n,):
                raise ValueError(f"field column {k!r} has shape {arr.shape}, expected ({n},)")
            fields[k] = arr
        object.__setattr__(self, "time_ns", t)
        object.__setattr__(self, "tags", MappingProxyType(tags))
        object.__setattr__(self, "fields", MappingProxyType(fields))

    def __len__(self) -> int:
        return int(self.time_ns.shape[0])

    @property
    def n_values(self) -> int:
        """Number of field values present (not NaN): the unit of 'samples' in benchmarks."""
        return int(sum(np.count_nonzero(~np.isnan(v)) for v in self.fields.values()))

    def select(self, mask_or_index) -> "Batch":
        return Batch(
            self.measurement,
            self.time_ns[mask_or_index],
            {k: v[mask_or_index] for k, v in self.tags.items()},
            {k: v[mask_or_index] for k, v in self.fields.items()},
        )

    def with_fields(self, **columns) -> "Batch":
        merged = dict(self.fields)
        merged.update(columns)
        return Batch(self.measurement, self.time_ns, self.tags, merged)

    def to_frame(self) -> pd.DataFrame:
        data = {"time_ns": self.time_ns}
        data.update(self.tags)
        data.update(self.fields)
        return pd.DataFrame(data)

    @classmethod
    def from_frame(cls, measurement: str, frame: pd.DataFrame, tags: Sequence[str]) -> "Batch":
        fields = [c for c in frame.columns if c != "time_ns" and c not in tags]
        return cls(
            measurement,
            frame["time_ns"].to_numpy(dtype=np.int64),
            {t: frame[t].astype(object).to_numpy() for t in tags},
            {f: frame[f].to_numpy(dtype=np.float64, na_value=np.nan) for f in fields},
        )

    @classmethod
    def empty(cls, measurement: str, tags: Iterable[str] = (), fields: Iterable[str] = ()) -> "Batch":
        return cls(
            measurement,
            np.empty(0, dtype=np.int64),
            {t: np.empty(0, dtype=object) for t in tags},
            {f: np.empty(0, dtype=np.float64) for f in fields},
        )


def concat_batches(batches: Sequence[Batch]) -> Batch:
    """Concatenate batches of one measurement; missing columns become NaN / empty tags."""
    if not batches:
        raise ValueError("concat_batches needs at least one batch")
    measurement = batches[0].measurement
    if any(b.measurement != measurement for b in batches):
        raise ValueError("concat_batches: batches have different measurements")
    tag_names = list(dict.fromkeys(k for b in batches for k in b.tags))
    field_names = list(dict.fromkeys(k for b in batches for k in b.fields))
    # the filler is built only for a batch that lacks the column (not once per batch and column)
    tags = {
        k: np.concatenate([b.tags[k] if k in b.tags else np.full(len(b), "", dtype=object) for b in batches])
        for k in tag_names
    }
    fields = {
        k: np.concatenate([b.fields[k] if k in b.fields else np.full(len(b), np.nan) for b in batches])
        for k in field_names
    }
    return Batch(measurement, np.concatenate([b.time_ns for b in batches]), tags, fields)


class Severity:
    """Event and alarm severities, X.733 perceived severity plus 'info' for events."""

    CRITICAL = "critical"
    MAJOR = "major"
    MINOR = "minor"
    WARNING = "warning"
    INDETERMINATE = "indeterminate"
    CLEARED = "cleared"
    INFO = "info"
    ALL = (CRITICAL, MAJOR, MINOR, WARNING, INDETERMINATE, CLEARED, INFO)


@dataclass(frozen=True)
class Event:
    """Something that happened once: an XID, a trap, a GPU lost, an agent gone silent.

    `target` holds the topology tags of what it happened to (site, hall, row, rack, device,
    accel, ...); `kind` is a short stable name from the event catalogue (`dcops.catalogue`);
    `attributes` carries kind-specific details (xid number, trap OID, ...).
    """

    time_ns: int
    kind: str
    source: str
    target: Mapping[str, str]
    severity: str = Severity.INFO
    message: str = ""
    attributes: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.severity not in Severity.ALL:
            raise ValueError(f"event severity {self.severity!r} is not one of {Severity.ALL}")
        object.__setattr__(self, "time_ns", int(self.time_ns))
        object.__setattr__(self, "target", MappingProxyType(dict(self.target)))
        object.__setattr__(self, "attributes", MappingProxyType(dict(self.attributes)))

    def to_dict(self) -> dict:
        return {
            "time_ns": self.time_ns,
            "kind": self.kind,
            "source": self.source,
            "target": dict(self.target),
            "severity": self.severity,
            "message": self.message,
            "attributes": dict(self.attributes),
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> "Event":
        return cls(
            time_ns=int(d["time_ns"]),
            kind=str(d["kind"]),
            source=str(d["source"]),
            target={str(k): str(v) for k, v in dict(d.get("target") or {}).items()},
            severity=str(d.get("severity", Severity.INFO)),
            message=str(d.get("message", "")),
            attributes=dict(d.get("attributes") or {}),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True)
