"""Per-interval state shared by training and scoring: aligned matrices, windows, smoothed inputs.

`FeatureTracker.observe(batches)` turns one interval's batches into an `IntervalFeatures`:
every stream's matrix in inventory order, the accelerators' model features and window
features, counter increments since the previous interval, each accelerator's smoothed power
and its server's inlet temperature. Training replays history through the same tracker, so the
models see exactly the features the scorer computes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dcops.analytics.features import (
    ACCEL_COUNTERS, ACCEL_MODEL_FEATURES, STREAMS, FeatureWindow, accel_window_features, align, component_ids,
    group_batches,
)
from dcops.topology import Inventory

__all__ = ["FeatureTracker", "IntervalFeatures", "peer_groups", "THERMAL_INPUTS", "INLET_INPUTS"]

THERMAL_INPUTS = ("accel_power_w:ema", "server_inlet_temp_degc")
INLET_INPUTS = ("rack_power_w", "zone_it_power_w")  # what heats a rack's inlet, besides cooling
POWER_EMA = 0.22  # 1 - exp(-10 s / 40 s): the die's thermal time constant at 10 s intervals


@dataclass
class IntervalFeatures:
    time_ns: int
    streams: dict[str, np.ndarray]  # measurement -> (components, metrics) in inventory order
    accel: np.ndarray  # (accels, ACCEL_MODEL_FEATURES)
    window: np.ndarray  # (accels, WINDOW_FEATURE_NAMES)
    counter_delta: np.ndarray  # (accels, ACCEL_COUNTERS), increments since the previous interval
    thermal: np.ndarray  # (accels, THERMAL_INPUTS + temperature)
    rack_thermal: np.ndarray  # (racks, INLET_INPUTS + inlet temperature)


def peer_groups(inv: Inventory, min_group: int = 4) -> np.ndarray:
    """Group label per accelerator: model+rack, or model+row, or model, whichever has enough peers."""
    tags = inv.accel_tags
    model = pd.Series(tags["model"], dtype=object).astype(str)
    out = model.copy()
    for scope in ("row", "rack"):  # the finest scope with enough members wins
        label = model + "|" + pd.Series(tags[scope], dtype=object).astype(str)
        big = label.map(label.value_counts()) >= min_group
        out = out.where(~big, label)
    return out.to_numpy(dtype=object)


class FeatureTracker:
    def __init__(self, inventory: Inventory, window: int = 30) -> None:
        self.inventory = inventory
        self.streams = STREAMS
        self.ids = {s.measurement: pd.Index(component_ids(inventory, s)) for s in STREAMS}
        self.accel_index = pd.Index(inventory.accel_ids)
        self.server_index = pd.Index([s.name for s in inventory.servers])
        self.accel_server = self.server_index.get_indexer(inventory.accel_tags["device"])
        n = len(self.accel_index)
        self.window = FeatureWindow(n, len(ACCEL_MODEL_FEATURES), window)
        self._last_counters = np.full((n, len(ACCEL_COUNTERS)), np.nan)
        self._power_ema = np.full(n, np.nan)
        self._last_inlet = np.full(n, np.nan)
        self.rack_index = pd.Index([r.name for r in inventory.racks])
        codes, names = pd.factorize(pd.Series([r.attrs.get("zone", "") for r in inventory.racks], dtype=object))
        self.rack_zone, self.zone_names = codes, [str(z) for z in names]

    def observe(self, batches) -> IntervalFeatures:
        by = group_batches(batches)
        times = [int(b.time_ns.max()) for b in by.values() if len(b)]
        streams = {}
        for s in self.streams:
            b = by.get(s.measurement)
            idx = self.ids[s.measurement]
            streams[s.measurement] = (align(b, idx, s.key, s.metrics) if b is not None
                                      else np.full((len(idx), len(s.metrics)), np.nan))
        ab = by.get("accel")
        n = len(self.accel_index)
        if ab is not None:
            accel = align(ab, self.accel_index, ("device", "accel"), ACCEL_MODEL_FEATURES)
            counters = align(ab, self.accel_index, ("device", "accel"), ACCEL_COUNTERS)
        else:
            accel = np.full((n, len(ACCEL_MODEL_FEATURES)), np.nan)
            counters = np.full((n, len(ACCEL_COUNTERS)), np.nan)
        delta = np.nan_to_num(counters - self._last_counters, nan=0.0)
        delta = np.maximum(delta, 0.0)  # a counter reset (driver reload) is not an error burst
        self._last_counters = np.where(np.isnan(counters), self._last_counters, counters)
        self.window.push(accel)
        power = accel[:, ACCEL_MODEL_FEATURES.index("accel_power_w")]
        ema = np.where(np.isnan(self._power_ema), power, self._power_ema + POWER_EMA * (power - self._power_ema))
        self._power_ema = np.where(np.isnan(power), self._power_ema, ema)
        inlet = np.full(n, np.nan)
        sb = by.get("server")
        if sb is not None:
            srv = align(sb, self.server_index, ("device",), ("server_inlet_temp_degc",))[:, 0]
            ok = self.accel_server >= 0
            inlet[ok] = srv[self.accel_server[ok]]
        self._last_inlet = np.where(np.isnan(inlet), self._last_inlet, inlet)
        temp = accel[:, ACCEL_MODEL_FEATURES.index("accel_temp_degc")]
        thermal = np.column_stack([self._power_ema, self._last_inlet, temp])
        rb = by.get("rack")
        rack = (align(rb, self.rack_index, ("rack",), ("rack_power_w", "rack_inlet_temp_degc")) if rb is not None
                else np.full((len(self.rack_index), 2), np.nan))
        zone_heat = np.bincount(self.rack_zone, weights=np.nan_to_num(rack[:, 0]), minlength=len(self.zone_names))
        rack_thermal = np.column_stack([rack[:, 0], zone_heat[self.rack_zone], rack[:, 1]])
        return IntervalFeatures(max(times) if times else 0, streams, accel, accel_window_features(self.window),
                                delta, thermal, rack_thermal)
