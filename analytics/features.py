"""Feature windows: per-interval matrices aligned with the inventory, and trailing windows of them.

Everything here is columnar: a batch becomes a (components x metrics) float matrix in inventory
order with one vectorised index lookup, and a `FeatureWindow` keeps the last W of them in a
ring buffer. Which metrics each measurement contributes, and how components are keyed, is data
(`STREAMS`), so adding a device family is adding a row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dcops.batch import Batch, concat_batches
from dcops.catalogue import metric
from dcops.topology import Inventory

__all__ = [
    "Stream", "STREAMS", "ACCEL_MODEL_FEATURES", "ACCEL_COUNTERS", "component_ids", "align",
    "FeatureWindow", "accel_window_features", "WINDOW_FEATURE_NAMES", "group_batches",
    "MIN_SCALE_BY_UNIT", "REL_SCALE_BY_UNIT", "unit_floors",
]


@dataclass(frozen=True)
class Stream:
    """One measurement watched by the univariate detector: how rows map to components."""

    measurement: str
    key: tuple[str, ...]  # tag(s) that name the component; accelerators join device and accel
    metrics: tuple[str, ...]
    inventory_kind: str
    sensors: tuple[str, ...] = ()  # physical probes that can get stuck (noisy analog readings)
    peer_metrics: tuple[str, ...] = ()  # compared with same-kind peers at the same moment
    peer_attr: str = ""  # inventory attribute that makes two components peers (besides their kind)
    # sensors of the air (or coolant) around the unit, which its neighbours share, as opposed to
    # the unit's own temperature driven by its own load: a neighbour that moved says they moved too
    ambient: tuple[str, ...] = ()
    # quantities that hold steady when healthy whatever the load (a filter's pressure drop, a
    # controlled supply temperature): a slow departure from the unit's own level that its
    # neighbours do not share is wear (`slow_drift`)
    drifts: tuple[str, ...] = ()
    # quantities a controller or the supply holds at one level whatever the load (a UPS's output
    # voltage, a unit's controlled supply temperature): a value beyond anything the unit has read
    # is news whenever it comes (`novelty`); not a power or a return temperature, which follow
    # the load and set new highs on the first busy afternoon
    held: tuple[str, ...] = ()
    # (sensor, metric of the same unit that drives it): a unit's own temperature follows its own
    # power, not its neighbours' (different jobs); a repeat is suspicious when that driver moved
    drivers: tuple[tuple[str, str], ...] = ()


STREAMS: tuple[Stream, ...] = (
    Stream("accel", ("device", "accel"), (
        "accel_up", "accel_temp_degc", "accel_mem_temp_degc", "accel_power_w", "accel_thermal_throttle"), "accel", ("accel_temp_degc", "accel_mem_temp_degc"),
        drivers=(("accel_temp_degc", "accel_power_w"), ("accel_mem_temp_degc", "accel_power_w"))),
    Stream("server", ("device",), (
        "server_up", "server_psu_ok", "server_psu_a_power_w", "server_psu_b_power_w", "server_inlet_temp_degc",
        "server_fan_pct"), "server", ("server_inlet_temp_degc",), ambient=("server_inlet_temp_degc",)),
    Stream("rack", ("rack",), (
        "rack_feed_a_power_w", "rack_feed_b_power_w", "rack_inlet_temp_degc", "rack_outlet_temp_degc"), "rack",
        ("rack_inlet_temp_degc", "rack_outlet_temp_degc"), ambient=("rack_inlet_temp_degc",)),
    Stream("pdu", ("device",), ("pdu_power_w", "pdu_voltage_v", "pdu_breaker_closed"), "pdu", held=("pdu_voltage_v",)),
    Stream("ups", ("device",), ("ups_input_voltage_v", "ups_on_battery", "ups_output_voltage_v"), "ups",
           held=("ups_input_voltage_v", "ups_output_voltage_v")),
    Stream("cooling", ("device",), (
        "cooling_running", "cooling_supply_temp_degc", "cooling_return_temp_degc", "cooling_fan_pct",
        "cooling_filter_dp_pa", "cooling_flow_lpm"), "cooling",
        ("cooling_supply_temp_degc", "cooling_return_temp_degc"), ("cooling_filter_dp_pa",), "unit_kind",
        drifts=("cooling_filter_dp_pa", "cooling_supply_temp_degc"), held=("cooling_supply_temp_degc",)),
    Stream("env", ("device",), ("env_temp_degc", "env_humidity_pct"), "env", ("env_temp_degc", "env_humidity_pct"),
           ambient=("env_temp_degc", "env_humidity_pct")),
)

# Per accelerator model (device type): what the multivariate model and the peers look at.
ACCEL_MODEL_FEATURES = ("accel_temp_degc", "accel_mem_temp_degc", "accel_power_w", "accel_util_pct",
                        "accel_sm_clock_mhz", "accel_fan_pct")
ACCEL_COUNTERS = (
    "accel_ecc_uncorrected_total", "accel_ecc_volatile_uncorrected", "accel_remapped_rows_uncorrectable_total",
    "accel_remapped_rows_correctable_total", "accel_remapped_rows_pending", "accel_pcie_replay_total",
    "accel_nvlink_crc_errors_total", "accel_nvlink_replay_total", "accel_nvlink_recovery_total",
    "accel_ecc_volatile_corrected", "accel_xid_total",
)
WINDOW_FEATURE_NAMES = ACCEL_MODEL_FEATURES + ("accel_temp_degc:change", "accel_power_w:window_sd")

# Smallest spread a baseline may have, per unit: below it, noise-free signals would alarm on
# rounding. Relative floors (share of the level) apply on top for power.
MIN_SCALE_BY_UNIT = {"degC": 0.4, "W": 5.0, "state": 0.05, "count": 0.05, "V": 2.0, "%": 1.5, "Pa": 3.0,
                     "MHz": 15.0, "l/min": 5.0, "%RH": 1.5}
REL_SCALE_BY_UNIT = {"W": 0.02}


def unit_floors(metrics) -> np.ndarray:
    """The smallest spread of each metric, from its unit."""
    return np.array([MIN_SCALE_BY_UNIT.get(metric(m).unit, 1e-3) for m in metrics])


def component_ids(inv: Inventory, stream: Stream) -> list[str]:
    if stream.inventory_kind == "accel":
        return list(inv.accel_ids)
    return [c.name for c in inv.of_kind(stream.inventory_kind)]


def _row_keys(batch: Batch, key: tuple[str, ...]) -> np.ndarray:
    missing = [k for k in key if k not in batch.tags]
    if missing:
        raise ValueError(f"{batch.measurement} batch lacks tag(s) {missing} needed to name components")
    if len(key) == 1:
        return np.asarray(batch.tags[key[0]], dtype=object)
    parts = [pd.Series(batch.tags[k], dtype=object).astype(str) for k in key]
    return (parts[0] + ":" + parts[1]).to_numpy(dtype=object)


def align(batch: Batch, index: pd.Index, key: tuple[str, ...], metrics) -> np.ndarray:
    """(components x metrics) matrix in `index` order; NaN for components without a row."""
    out = np.full((len(index), len(metrics)), np.nan)
    if len(batch) == 0:
        return out
    pos = index.get_indexer(_row_keys(batch, key))
    ok = pos >= 0
    for j, m in enumerate(metrics):
        col = batch.fields.get(m)
        if col is not None:
            out[pos[ok], j] = col[ok]
    return out


def group_batches(batches) -> dict[str, Batch]:
    """One batch per measurement (several polls of one interval are concatenated)."""
    by: dict[str, list[Batch]] = {}
    for b in batches:
        by.setdefault(b.measurement, []).append(b)
    return {m: bs[0] if len(bs) == 1 else concat_batches(bs) for m, bs in by.items()}


class FeatureWindow:
    """The last `length` interval matrices of shape (components, features), oldest first."""

    def __init__(self, n_components: int, n_features: int, length: int) -> None:
        if length < 2:
            raise ValueError("a feature window needs at least 2 intervals")
        self.length = length
        self._buf = np.full((length, n_components, n_features), np.nan)
        self._next = 0
        self.count = 0

    def push(self, matrix: np.ndarray) -> None:
        self._buf[self._next] = matrix
        self._next = (self._next + 1) % self.length
        self.count += 1

    def ordered(self) -> np.ndarray:
        """(time, components, features), oldest first, only the filled part."""
        n = min(self.count, self.length)
        idx = (np.arange(self._next - n, self._next)) % self.length
        return self._buf[idx]

    def latest(self, back: int = 0) -> np.ndarray:
        if back >= min(self.count, self.length):
            return np.full(self._buf.shape[1:], np.nan)
        return self._buf[(self._next - 1 - back) % self.length]


def accel_window_features(window: FeatureWindow) -> np.ndarray:
    """Window features of every accelerator: current values, temperature change over the window
    and power variability (columns as `WINDOW_FEATURE_NAMES`)."""
    cur = window.latest()
    hist = window.ordered()
    t_i, p_i = ACCEL_MODEL_FEATURES.index("accel_temp_degc"), ACCEL_MODEL_FEATURES.index("accel_power_w")
    with np.errstate(invalid="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            change = cur[:, t_i] - np.nanmean(hist[:, :, t_i], axis=0)
            psd = np.nanstd(hist[:, :, p_i], axis=0)
    return np.column_stack([cur, change, psd])
