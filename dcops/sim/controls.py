"""The simulator's public fault interface: the few levers a fault may pull, by component name.

Fault types (`dcops.sim.fault_library`) act only through these methods, never on the
simulator's arrays; `Simulator` inherits them. Each lever is a physical fact ("the breaker of
this PDU is open", "no telemetry leaves these components"), and the physics and the sensor
model take it from there on the next step.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np

from dcops.batch import Event
from dcops.sim.labels import FaultLabel
from dcops.topology import Inventory

__all__ = ["FaultControls"]

_FEEDS = "AB"


class FaultControls:
    """Mixin for `Simulator`; the attributes it uses are set up by the simulator."""

    inventory: Inventory
    now_ns: int

    # ----- events ---------------------------------------------------------------------------
    def emit(self, kind: str, component: str, severity: str, message: str, attrs: Mapping[str, object]) -> Event:
        """Announce an operational event about `component` (what the device itself would report)."""
        return self._emit(kind, self.inventory.get(component), severity, message, dict(attrs))

    def xid(self, accel: str, code: int, meaning: str) -> None:
        """The driver reports XID `code` on `accel`."""
        self._xid(self.inventory.accel_index[accel], code, meaning)

    # ----- cooling --------------------------------------------------------------------------
    def set_cooling_running(self, unit: str, running: bool) -> None:
        self.c_running[self._ci[unit]] = running

    def set_filter_clogging(self, unit: str, label: FaultLabel | None) -> None:
        """Clog the unit's filter over `label`'s span; None: a new, clean filter is fitted."""
        c = self._ci[unit]
        if label is not None:
            self._clog[c] = label
        else:
            self._clog.pop(c, None)
            self.c_filter[c] = 1.0
            self.sensors.replace_filter(c)

    def set_pump(self, unit: str, ok: bool) -> None:
        self.c_pump_ok[self._ci[unit]] = ok

    def set_leak(self, unit: str, pct_per_s: float) -> None:
        """Coolant lost at `pct_per_s` of the loop's volume; 0 seals the leak and refills the loop."""
        c = self._ci[unit]
        self.c_leak[c] = pct_per_s
        if pct_per_s <= 0:
            self.c_level[c] = 100.0

    # ----- servers and power ----------------------------------------------------------------
    def set_server_fans(self, server: str, ok: bool) -> None:
        self.s_fan_ok[self._si[server]] = ok

    def set_psu(self, server: str, feed: str, ok: bool) -> None:
        self.s_psu_ok[self._si[server], _FEEDS.index(feed)] = ok

    def set_utility(self, ups: str, present: bool) -> None:
        """Utility power at the UPS input: without it the UPS runs on battery."""
        self.u_battery[self._ui_ups[ups]] = not present

    def set_ups_output(self, ups: str, on: bool) -> None:
        """The UPS's output (inverter and static bypass): off drops everything it feeds."""
        self.u_output_ok[self._ui_ups[ups]] = on

    def set_breaker(self, pdu: str, closed: bool) -> None:
        self.p_closed[self._pi[pdu]] = closed

    # ----- accelerators ---------------------------------------------------------------------
    def ecc_double_bit(self, accel: str) -> None:
        """A double-bit ECC error: counters up, a row remapped (pending until reset), XIDs 48 and 63."""
        i = self.inventory.accel_index[accel]
        k = int(self.rng.integers(1, 4))
        self.ecc_uncorr[i] += k
        self.ecc_vol_uncorr[i] += k
        self.remap_uncorr[i] += 1
        self.remap_pending[i] = 1
        self._xid(i, 48, "Double Bit ECC Error")
        self._xid(i, 63, "Row remapping pending")

    def clear_remap_pending(self, accel: str) -> None:
        self.remap_pending[self.inventory.accel_index[accel]] = 0

    def set_accel_lost(self, accel: str, lost: bool) -> None:
        self.lost[self.inventory.accel_index[accel]] = lost

    def set_hbm_heating(self, accel: str, extra_degc: float) -> None:
        self.hbm_extra[self.inventory.accel_index[accel]] = extra_degc

    def set_heatsink_factor(self, accel: str, factor: float) -> None:
        """Thermal resistance die -> air relative to nominal (3.5: a heatsink that lost contact)."""
        self.rth_factor[self.inventory.accel_index[accel]] = factor

    # ----- sensors and telemetry ------------------------------------------------------------
    def freeze_sensor(self, component: str, metric: str) -> None:
        """From the next reading on, `component` reports `metric` at that reading's value."""
        self._stuck[(component, metric)] = None

    def release_sensor(self, component: str, metric: str) -> None:
        self._stuck.pop((component, metric), None)

    def cut_telemetry(self, key: str, components: Iterable[str]) -> None:
        """No reading of these components leaves the site until `restore_telemetry(key)`."""
        self._cuts[key] = frozenset(components)
        self._silent = frozenset().union(*self._cuts.values())

    def restore_telemetry(self, key: str) -> None:
        self._cuts.pop(key, None)
        self._silent = frozenset().union(*self._cuts.values()) if self._cuts else frozenset()

    @property
    def silent(self) -> frozenset[str]:
        """Components whose telemetry does not reach the collectors now (dead switch or agent)."""
        return self._silent

    def reports(self, names: Iterable[str]) -> np.ndarray:
        """Mask: which of `names` still deliver telemetry."""
        names = list(names)
        if not self._silent:
            return np.ones(len(names), dtype=bool)
        return np.fromiter((n not in self._silent for n in names), dtype=bool, count=len(names))
