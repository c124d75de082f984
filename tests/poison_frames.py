"""Decodable but bad bus frames (issue 20, failure 2), built byte by byte as a foreign producer could."""

from __future__ import annotations

import json
import struct

import numpy as np

from dcops.codec import BATCH_MAGIC, EVENTS_MAGIC


def batch_frame(measurement, t_ns: int, tags: dict, fields: list, values=None) -> bytes:
    """One-row batch frame: `tags` maps a name to its one-value dictionary, `fields` lists names."""
    header = json.dumps({"m": measurement, "n": 1, "tags": {k: [v] for k, v in tags.items()},
                         "fields": fields}).encode()
    parts = [BATCH_MAGIC, struct.pack("<I", len(header)), header, np.array([t_ns], "<i8").tobytes()]
    parts += [np.array([0], "<i4").tobytes() for _ in tags]
    parts += [np.array([v], "<f8").tobytes() for v in (values or [300.0] * len(fields))]
    return b"".join(parts)


def event_frame(time_ns, kind: str = "xid", target=None) -> bytes:
    ev = {"time_ns": time_ns, "kind": kind, "source": "nvml", "target": target or {"rack": "R1"},
          "severity": "warning", "message": "m", "attributes": {}}
    return EVENTS_MAGIC + json.dumps(ev).encode()


def poison(t_ns: int) -> dict[str, bytes]:
    """name -> frame; each one must be dead-lettered alone while good frames around it are stored."""
    rack = {"rack": "R9"}
    return {
        "numeric field name": batch_frame("rack", t_ns, rack, [7]),
        "null field name": batch_frame("rack", t_ns, rack, [None]),
        "object tag value": batch_frame("rack", t_ns, {"rack": {"a": 1}}, ["rack_power_w"]),
        "list tag value": batch_frame("rack", t_ns, {"rack": [1, 2]}, ["rack_power_w"]),
        "comment measurement": batch_frame("#accel", t_ns, rack, ["rack_power_w"]),
        "event time 1e30": event_frame(1e30),
        "event time negative": event_frame(-5),
        "batch time before 1970": batch_frame("rack", -10**18, rack, ["rack_power_w"]),
        "infinite value": batch_frame("rack", t_ns, rack, ["rack_power_w"], [float("inf")]),
    }
