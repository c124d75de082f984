"""Silences and maintenance windows: who is not to be paged, when, and why.

- A `Silence` matches alarms by label matchers; while it is in effect matching alarms are not
  notified but stay in the alarm list, marked with the silence's id.
- A `MaintenanceWindow` names a component (a feed's PDU, a UPS, a CRAC, a rack): it and
  everything downstream of it (`Inventory.downstream`: power, cooling, containment) is
  covered. Alarms there are marked `expected` and not notified; the console shows them as
  expected, never hides them.

Both are one-off (`starts_ns`..`ends_ns`) or recurring weekly inside that range
(`Recurrence`: weekdays, start time, duration, time zone). `SuppressionIndex.check(alarm,
now)` answers for one alarm; it is rebuilt whenever silences change.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Iterable, NamedTuple
from zoneinfo import ZoneInfo

from dcops.alerts.alarms.matchers import matches_all
from dcops.alarm_types import Alarm, MaintenanceWindow, Recurrence, Silence
from dcops.topology import Inventory

__all__ = ["in_effect", "SuppressionIndex", "Suppression", "parse_hhmm"]

_NS = 1_000_000_000


def parse_hhmm(text: str) -> tuple[int, int]:
    try:
        h, m = text.split(":")
        h, m = int(h), int(m)
    except ValueError:
        raise ValueError(f"time {text!r} is not HH:MM") from None
    if not (0 <= h < 24 and 0 <= m < 60):
        raise ValueError(f"time {text!r} is not HH:MM")
    return h, m


def _recurring_active(rec: Recurrence, now_ns: int) -> bool:
    tz = ZoneInfo(rec.timezone)
    now = datetime.fromtimestamp(now_ns / _NS, tz=timezone.utc).astimezone(tz)
    h, m = parse_hhmm(rec.start)
    days_back = int(rec.duration_s // 86400) + 1
    for k in range(days_back + 1):
        day = (now - timedelta(days=k)).date()
        if day.weekday() not in rec.weekdays:
            continue
        start = datetime(day.year, day.month, day.day, h, m, tzinfo=tz)
        if start <= now < start + timedelta(seconds=rec.duration_s):
            return True
    return False


def in_effect(item: Silence | MaintenanceWindow, now_ns: int) -> bool:
    if item.expired_ns is not None and item.expired_ns <= now_ns:
        return False
    if not (item.starts_ns <= now_ns < item.ends_ns):
        return False
    return item.recurrence is None or _recurring_active(item.recurrence, now_ns)


class Suppression(NamedTuple):
    by: tuple[str, ...]   # "silence:<id>", "maintenance:<id>"
    expected: bool        # covered by a maintenance window


class SuppressionIndex:
    def __init__(self, silences: Iterable[Silence], windows: Iterable[MaintenanceWindow], inventory: Inventory | None) -> None:
        self.silences = tuple(silences)
        self.windows = tuple(windows)
        self._covered: dict[str, frozenset[str]] = {}
        for w in self.windows:
            comps = {w.component}
            if inventory is not None and w.component in inventory.components:
                comps |= inventory.downstream(w.component)
            self._covered[w.id] = frozenset(comps)

    def check(self, alarm: Alarm, now_ns: int) -> Suppression:
        by = [f"silence:{s.id}" for s in self.silences if in_effect(s, now_ns) and matches_all(s.matchers, alarm.labels)]
        expected = False
        for w in self.windows:
            if alarm.component in self._covered[w.id] and in_effect(w, now_ns):
                by.append(f"maintenance:{w.id}")
                expected = True
        return Suppression(tuple(by), expected)

    def __bool__(self) -> bool:
        return bool(self.silences or self.windows)
