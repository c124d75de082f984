"""What the GPU and NPU agents share: topology tags, batch building, CLI readings.

Every accelerator row carries the site tags (site, hall, row, rack, device, accel, vendor,
model) plus the accelerator's `uuid`. When the host is in the site inventory the tags come
from there (accelerator `<server>:<index>`); on a bare host `device` is the hostname, `accel`
the index, vendor and model what the device reports, and site/hall/row/rack are empty.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

from dcops.batch import Batch, Event, Severity
from dcops.catalogue import metric
from dcops.catalogue.accel import ACCEL_TAGS
from dcops.topology import Inventory, accel_id

__all__ = ["ACCEL_ROW_TAGS", "CounterShares", "accel_targets", "build_accel_batch", "decode_clock_reasons",
           "lost_event", "readings", "recovered_event", "share_evenly"]

ACCEL_ROW_TAGS = ACCEL_TAGS + ("uuid",)

# nvmlClocksEventReason* bits -> names (as NVML's documentation names them).
CLOCK_REASONS = (
    (0x1, "gpu_idle"), (0x2, "applications_clocks_setting"), (0x4, "sw_power_cap"),
    (0x8, "hw_slowdown"), (0x10, "sync_boost"), (0x20, "sw_thermal_slowdown"),
    (0x40, "hw_thermal_slowdown"), (0x80, "hw_power_brake_slowdown"), (0x100, "display_clock_setting"),
)
THERMAL_BITS = 0x20 | 0x40
POWER_BITS = 0x4 | 0x80


def decode_clock_reasons(mask: int) -> tuple[str, ...]:
    return tuple(name for bit, name in CLOCK_REASONS if int(mask) & bit)


def accel_targets(host: str, indices: Sequence[int], vendors: Sequence[str], models: Sequence[str],
                  uuids: Sequence[str], inventory: Inventory | None = None) -> list[dict[str, str]]:
    """The tags of each accelerator of `host`, from the inventory when it knows the host."""
    out = []
    for i, vendor, model, uuid in zip(indices, vendors, models, uuids):
        aid = accel_id(host, int(i))
        if inventory is not None and aid in inventory.accel_index:
            k = inventory.accel_index[aid]
            t = {name: str(inventory.accel_tags[name][k]) for name in ACCEL_TAGS}
        else:
            t = {"site": "", "hall": "", "row": "", "rack": "", "device": host, "accel": str(int(i)),
                 "vendor": vendor, "model": model}
        t["uuid"] = uuid
        out.append(t)
    return out


def build_accel_batch(time_ns: int, targets: Sequence[Mapping[str, str]], columns: Sequence[str],
                      rows: Sequence[Sequence[float]]) -> Batch:
    """One `accel` batch: a row per accelerator, a float64 column per metric (NaN = missing)."""
    n = len(targets)
    data = np.asarray(rows, dtype=np.float64).reshape(n, len(columns))
    tags = {name: np.asarray([t[name] for t in targets], dtype=object) for name in ACCEL_ROW_TAGS}
    return Batch("accel", np.full(n, time_ns, dtype=np.int64), tags,
                 {m: data[:, j] for j, m in enumerate(columns)})


def share_evenly(totals: Mapping[str, float], serving: Sequence[bool]) -> dict[str, list[float]]:
    """A host's inference-server counters split evenly over the accelerators marked serving.

    {metric: [share per accelerator]}, NaN for those not serving; empty when none serves (the
    counters then have no accelerator to be attributed to)."""
    n = sum(1 for s in serving if s)
    if not n:
        return {}
    return {m: [total / n if s else math.nan for s in serving] for m, total in totals.items()}


class CounterShares:
    """Per-accelerator shares of a host's serving counters that never go backwards.

    Sharing a counter's *total* over the accelerators that are up (`share_evenly`) makes every
    survivor's share jump when one goes down (7 shares of the total instead of 8): a burst of
    tokens/s the size of the whole history. Here the first read is shared evenly, and after that
    each poll's *rise* is shared over the accelerators up now, added to what each already had;
    an accelerator that comes back goes on from its own value, a new one starts from 0. A fall
    of the host's counter (the server restarted) starts over from an even split, which the
    store's rate reads as a reset. Gauges (`accel_requests_running`) are shared as they are."""

    def __init__(self) -> None:
        self._host: dict[str, float] = {}
        self._accel: dict[tuple[str, str], float] = {}

    def split(self, totals: Mapping[str, float], uuids: Sequence[str], up: Sequence[bool]) -> dict[str, list[float]]:
        """{metric: [value per accelerator]} (NaN for those not up); empty when none is up."""
        out: dict[str, list[float]] = {}
        for metric, total in totals.items():
            if not metric.endswith("_total"):
                out.update(share_evenly({metric: total}, up))
                continue
            before = self._host.get(metric)
            restart = before is None or total < before
            shares = share_evenly({metric: total if restart else total - before}, up).get(metric)
            if shares is None:
                continue  # no accelerator up: the rise has no one to go to
            self._host[metric] = total
            col = []
            for uuid, share in zip(uuids, shares):
                if share != share:
                    col.append(math.nan)
                    continue
                key = (metric, uuid)
                value = self._accel[key] = share if restart else self._accel.get(key, 0.0) + share
                col.append(value)
            out[metric] = col
        return out


def readings(batch: Batch) -> list[dict]:
    """Per-value readings for operators: {accelerator, vendor, model, metric, unit, value}."""
    out = []
    tags = batch.tags
    for r in range(len(batch)):
        for name, col in batch.fields.items():
            v = float(col[r])
            if math.isnan(v):
                continue
            rec = {"accelerator": str(tags["uuid"][r]), "vendor": str(tags["vendor"][r]),
                   "model": str(tags["model"][r]), "metric": name, "unit": metric(name).unit,
                   "value": int(v) if v.is_integer() and abs(v) < 2**53 else v}
            if name == "accel_throttle_reasons":
                rec["reasons"] = list(decode_clock_reasons(int(v)))
            out.append(rec)
    return out


def lost_event(time_ns: int, target: Mapping[str, str], source: str, detail: str) -> Event:
    who = f"{target.get('device', '')}:{target.get('accel', '')}"
    return Event(time_ns, "accel_lost", source, {k: v for k, v in target.items()}, Severity.CRITICAL,
                 f"accelerator {who} ({target.get('uuid', '')}) stopped answering: {detail}",
                 {"uuid": target.get("uuid", ""), "detail": detail})


def recovered_event(time_ns: int, target: Mapping[str, str], source: str) -> Event:
    who = f"{target.get('device', '')}:{target.get('accel', '')}"
    return Event(time_ns, "accel_recovered", source, {k: v for k, v in target.items()}, Severity.CLEARED,
                 f"accelerator {who} ({target.get('uuid', '')}) answers again", {"uuid": target.get("uuid", "")})
