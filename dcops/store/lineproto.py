"""InfluxDB line protocol from columnar batches, built column by column (pure; no I/O).

No Point object per value: every tag and field becomes one column of strings, escaped once per
distinct value (tags repeat heavily), and the columns are concatenated row-wise with numpy's
object-array `+`. NaN fields are left out of their row; a row with no field left is dropped;
an empty tag value is left out (line protocol has no empty tags). Floats are written in
shortest round-trip form, times in nanoseconds.
"""

from __future__ import annotations

import json
from typing import Iterator, Sequence

import numpy as np
import pandas as pd

from dcops.batch import Batch, Event, concat_batches

__all__ = ["batch_lines", "batches_to_chunks", "event_lines", "escape_tag", "escape_measurement",
           "EVENT_MEASUREMENT", "EVENT_TAGS"]

EVENT_MEASUREMENT = "events"
EVENT_TAGS = ("kind", "source", "severity", "hall", "row", "rack", "device", "accel")

_TAG_TABLE = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\\": "\\\\", "\n": r"\n"})
_MEAS_TABLE = str.maketrans({",": r"\,", " ": r"\ ", "\\": "\\\\", "\n": r"\n"})


def escape_tag(s: str) -> str:
    """Escape a tag key, tag value or field key."""
    return s.translate(_TAG_TABLE)


def escape_measurement(s: str) -> str:
    return s.translate(_MEAS_TABLE)


def _escape_str_field(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _tag_segments(name: str, col: np.ndarray) -> np.ndarray:
    """`,name=value` per row (escaped once per distinct value), '' where the value is empty."""
    codes, uniques = pd.factorize(col, use_na_sentinel=False)
    key = "," + escape_tag(name) + "="
    seg = np.array([key + escape_tag(str(u)) if u is not None and str(u) != "" else "" for u in uniques],
                   dtype=object)
    return seg[codes] if len(seg) else np.full(len(col), "", dtype=object)


def _format_floats(values: np.ndarray) -> np.ndarray:
    """Shortest round-trip text of each float, as an object array."""
    return np.asarray(list(map(repr, values.tolist())), dtype=object)


def batch_lines(batch: Batch) -> list[str]:
    """One line per row that has at least one field value. Raises ValueError on inf."""
    n = len(batch)
    if n == 0 or not batch.fields:
        return []
    prefix = np.full(n, escape_measurement(batch.measurement), dtype=object)
    for name in sorted(batch.tags):  # sorted tag keys: what InfluxDB indexes fastest
        prefix = prefix + _tag_segments(name, batch.tags[name])
    body = np.full(n, "", dtype=object)
    present_any = np.zeros(n, dtype=bool)
    for name, values in batch.fields.items():
        if np.isinf(values).any():
            raise ValueError(f"{batch.measurement}.{name}: infinite value cannot be stored")
        ok = ~np.isnan(values)
        if not ok.any():
            continue
        key = "," + escape_tag(name) + "="
        seg = np.full(n, "", dtype=object)
        seg[ok] = key + _format_floats(values[ok])
        body = body + seg
        present_any |= ok
    keep = np.flatnonzero(present_any)
    times = batch.time_ns[keep].tolist()
    # every body starts with ',' (before its first present field): drop it while joining
    return [f"{p} {b[1:]} {t}" for p, b, t in zip(prefix[keep].tolist(), body[keep].tolist(), times)]


def event_lines(events: Sequence[Event]) -> list[str]:
    """Events as rows of the `events` measurement: topology and kind as tags, the rest as fields."""
    out = []
    for e in events:
        tags = {"kind": e.kind, "source": e.source, "severity": e.severity}
        for k in ("hall", "row", "rack", "device", "accel"):
            if e.target.get(k):
                tags[k] = str(e.target[k])
        tag_s = "".join(f",{k}={escape_tag(v)}" for k, v in sorted(tags.items()) if v)
        fields = (f"message={_escape_str_field(e.message)},"
                  f"target={_escape_str_field(json.dumps(dict(e.target), sort_keys=True))},"
                  f"attributes={_escape_str_field(json.dumps(dict(e.attributes), sort_keys=True, default=str))}")
        out.append(f"{EVENT_MEASUREMENT}{tag_s} {fields} {e.time_ns}")
    return out


def batches_to_chunks(batches: Sequence[Batch], max_lines: int = 5000) -> Iterator[bytes]:
    """Line-protocol request bodies of at most `max_lines` lines each.

    Batches of one measurement are concatenated first (missing tags and fields are left out of
    their rows, exactly as when written one by one), so many small per-rack batches cost what one
    big batch costs.
    """
    by_measurement: dict[str, list[Batch]] = {}
    for b in batches:
        if len(b):
            by_measurement.setdefault(b.measurement, []).append(b)
    pending: list[str] = []
    for group in by_measurement.values():
        pending.extend(batch_lines(group[0] if len(group) == 1 else concat_batches(group)))
        if len(pending) >= max_lines:
            full = len(pending) - len(pending) % max_lines
            for i in range(0, full, max_lines):
                yield "\n".join(pending[i:i + max_lines]).encode()
            pending = pending[full:]
    if pending:
        yield "\n".join(pending).encode()
