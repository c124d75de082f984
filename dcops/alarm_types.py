"""The alarm and incident vocabulary, shared by alerts, runbooks and the console.

Alarms follow ITU-T X.733 / 3GPP TS 28.111 (formerly TS 32.111): an alarm is raised on a
*managed object* (here its topology path, `site/hall/row/rack/device/accel`), has an *event
type*, a *probable cause*, a *perceived severity*, a free-text *specific problem* and
*proposed repair actions*; correlation marks one alarm as the *root cause* and lists the
alarms it explains as *correlated notifications*. An alarm is identified by (object, probable
cause): a second raise of the same pair updates the existing alarm instead of adding one.

The NOC alarm list keeps the classic four states (`AlarmListState`): an alarm stays listed
until it is both cleared and acknowledged.

An `Incident` is what people work on: one per correlated group of alarms (or opened by an
operator), with a lifecycle (`IncidentState`) and a timeline of every alarm, notification and
operator action.

Everything here is a frozen dataclass or an enum; modules exchange these, never dicts.
Times are int nanoseconds since the epoch (UTC).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Mapping

__all__ = [
    "EventType", "ProbableCause", "PerceivedSeverity", "AlarmListState", "IncidentState",
    "IncidentAction", "TimelineKind", "DeliveryStatus", "SEVERITY_RANK", "AlarmKey", "Alarm",
    "TimelineEntry", "Incident", "Matcher", "Recurrence", "Silence", "MaintenanceWindow",
    "Notification", "INCIDENT_TRANSITIONS",
]


class EventType(str, enum.Enum):
    """X.733 event types (what kind of thing went wrong)."""

    COMMUNICATIONS = "communicationsAlarm"
    QUALITY_OF_SERVICE = "qualityOfServiceAlarm"
    PROCESSING_ERROR = "processingErrorAlarm"
    EQUIPMENT = "equipmentAlarm"
    ENVIRONMENTAL = "environmentalAlarm"


class ProbableCause(str, enum.Enum):
    """X.733 / 3GPP probable causes used by dcops (values are the standard camelCase names)."""

    POWER_PROBLEM = "powerProblem"
    COMMERCIAL_POWER_FAILURE = "commercialPowerFailure"   # UPS on battery: mains lost
    BATTERY_DISCHARGING = "batteryDischarging"
    BATTERY_FAILURE = "batteryFailure"
    POWER_SUPPLY_FAILURE = "powerSupplyFailure"           # server PSU, PDU breaker
    TEMPERATURE_UNACCEPTABLE = "temperatureUnacceptable"
    HUMIDITY_UNACCEPTABLE = "humidityUnacceptable"
    HEATING_VENT_COOLING = "heatingVentCoolingSystemProblem"
    FAN_FAILURE = "fanFailure"
    PRESSURE_UNACCEPTABLE = "pressureUnacceptable"
    LEAK_DETECTED = "leakDetected"
    ENCLOSURE_DOOR_OPEN = "enclosureDoorOpen"
    EQUIPMENT_MALFUNCTION = "equipmentMalfunction"        # GPU lost, XID 79, ECC DBE
    UNDERLYING_RESOURCE_UNAVAILABLE = "underlyingResourceUnavailable"  # node down
    LOSS_OF_REDUNDANCY = "lossOfRedundancy"
    THRESHOLD_CROSSED = "thresholdCrossed"
    PERFORMANCE_DEGRADED = "performanceDegraded"          # throttling, anomaly findings
    RESOURCE_AT_OR_NEARING_CAPACITY = "resourceAtOrNearingCapacity"
    LOSS_OF_SIGNAL = "lossOfSignal"                       # data absent / stale
    COMMUNICATIONS_FAILURE = "communicationsSubsystemFailure"
    SOFTWARE_ERROR = "softwareError"
    EXTERNAL = "external"                                 # fed in from another alerting system


class PerceivedSeverity(str, enum.Enum):
    CRITICAL = "critical"
    MAJOR = "major"
    MINOR = "minor"
    WARNING = "warning"
    INDETERMINATE = "indeterminate"
    CLEARED = "cleared"


SEVERITY_RANK: Mapping[PerceivedSeverity, int] = MappingProxyType({
    PerceivedSeverity.CLEARED: 0, PerceivedSeverity.INDETERMINATE: 1, PerceivedSeverity.WARNING: 2,
    PerceivedSeverity.MINOR: 3, PerceivedSeverity.MAJOR: 4, PerceivedSeverity.CRITICAL: 5,
})


class AlarmListState(str, enum.Enum):
    """Where an alarm stands in the NOC list; CLEARED_ACKNOWLEDGED leaves the list."""

    ACTIVE_UNACKNOWLEDGED = "active-unacknowledged"
    ACTIVE_ACKNOWLEDGED = "active-acknowledged"
    CLEARED_UNACKNOWLEDGED = "cleared-unacknowledged"
    CLEARED_ACKNOWLEDGED = "cleared-acknowledged"

    @staticmethod
    def of(cleared: bool, acknowledged: bool) -> "AlarmListState":
        if cleared:
            return AlarmListState.CLEARED_ACKNOWLEDGED if acknowledged else AlarmListState.CLEARED_UNACKNOWLEDGED
        return AlarmListState.ACTIVE_ACKNOWLEDGED if acknowledged else AlarmListState.ACTIVE_UNACKNOWLEDGED


class IncidentState(str, enum.Enum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    MITIGATING = "mitigating"
    RESOLVED = "resolved"
    CLOSED = "closed"


# Allowed operator transitions (from -> to). Reopening a resolved incident is allowed; a
# closed one is final.
INCIDENT_TRANSITIONS: Mapping[IncidentState, frozenset[IncidentState]] = MappingProxyType({
    IncidentState.OPEN: frozenset({IncidentState.ACKNOWLEDGED, IncidentState.MITIGATING, IncidentState.RESOLVED, IncidentState.CLOSED}),
    IncidentState.ACKNOWLEDGED: frozenset({IncidentState.MITIGATING, IncidentState.RESOLVED, IncidentState.CLOSED}),
    IncidentState.MITIGATING: frozenset({IncidentState.ACKNOWLEDGED, IncidentState.RESOLVED, IncidentState.CLOSED}),
    IncidentState.RESOLVED: frozenset({IncidentState.OPEN, IncidentState.CLOSED}),
    IncidentState.CLOSED: frozenset(),
})


class IncidentAction(str, enum.Enum):
    """What a notification says about an incident (PagerDuty event_action vocabulary)."""

    TRIGGER = "trigger"
    ACKNOWLEDGE = "acknowledge"
    RESOLVE = "resolve"


class TimelineKind(str, enum.Enum):
    ALARM_RAISED = "alarm_raised"
    ALARM_CHANGED = "alarm_changed"
    ALARM_CLEARED = "alarm_cleared"
    ROOT_CAUSE = "root_cause"
    NOTIFICATION = "notification"
    SUPPRESSED = "suppressed"          # silenced, inhibited or in maintenance: not notified
    ESCALATION = "escalation"
    STATE = "state"                    # incident state changed
    NOTE = "note"                      # an operator's note
    RUNBOOK = "runbook"                # a runbook step (issue 5 writes these)


class DeliveryStatus(str, enum.Enum):
    PENDING = "pending"        # written to the outbox, not yet sent (or waiting to retry)
    DELIVERED = "delivered"    # the receiver answered 2xx
    FAILED = "failed"          # gave up after max attempts (or a permanent 4xx)
    SUPPRESSED = "suppressed"  # not sent: silence / inhibition / maintenance


@dataclass(frozen=True)
class AlarmKey:
    """Alarm identity: the managed object (inventory name) and the probable cause."""

    component: str
    probable_cause: ProbableCause

    def __str__(self) -> str:
        return f"{self.component}|{self.probable_cause.value}"


@dataclass(frozen=True)
class Alarm:
    """One alarm as the NOC sees it. `id` is stable for the alarm's life (raise to clear).

    - `component` is the inventory name; `managed_object` its topology path.
    - `labels` are the matcher labels (site, hall, row, rack, device, accel, kind, rule, ...)
      used by silences, inhibition and routing.
    - `root_cause` is True on an alarm that explains others; `correlated` lists the ids of the
      alarms it explains; `root_alarm_id` is set on a symptom.
    - `suppressed_by` names silences / maintenance windows / inhibiting alarms that keep this
      alarm from being notified; `expected` is True when a maintenance window covers it (the
      console shows such alarms as expected, never hides them).
    """

    id: str
    component: str
    managed_object: str
    event_type: EventType
    probable_cause: ProbableCause
    severity: PerceivedSeverity
    specific_problem: str
    raised_ns: int
    changed_ns: int
    proposed_repair_actions: tuple[str, ...] = ()
    additional_text: str = ""
    rule: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    root_cause: bool = False
    root_alarm_id: str | None = None
    correlated: tuple[str, ...] = ()
    incident_id: str | None = None
    cleared_ns: int | None = None
    cleared_by: str | None = None
    acknowledged_ns: int | None = None
    acknowledged_by: str | None = None
    suppressed_by: tuple[str, ...] = ()
    expected: bool = False
    flapping: bool = False
    count: int = 1  # how many times raised (dedup and flap counter)

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", MappingProxyType(dict(self.labels)))

    @property
    def key(self) -> AlarmKey:
        return AlarmKey(self.component, self.probable_cause)

    @property
    def active(self) -> bool:
        return self.cleared_ns is None

    @property
    def acknowledged(self) -> bool:
        return self.acknowledged_ns is not None

    @property
    def list_state(self) -> AlarmListState:
        return AlarmListState.of(not self.active, self.acknowledged)

    @property
    def listed(self) -> bool:
        return self.list_state is not AlarmListState.CLEARED_ACKNOWLEDGED

    def evolve(self, **changes) -> "Alarm":
        return replace(self, **changes)


@dataclass(frozen=True)
class TimelineEntry:
    time_ns: int
    kind: TimelineKind
    text: str
    actor: str = "dcops"          # user name for operator actions, "dcops" for the system
    alarm_id: str | None = None
    notification_id: str | None = None
    data: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", MappingProxyType(dict(self.data)))


@dataclass(frozen=True)
class Incident:
    """What the on-call works on: a correlated group of alarms, or one an operator opened."""

    id: str
    title: str
    state: IncidentState
    severity: PerceivedSeverity
    opened_ns: int
    updated_ns: int
    root_alarm_id: str | None = None
    root_component: str | None = None
    alarm_ids: tuple[str, ...] = ()
    opened_by: str = "dcops"
    acknowledged_ns: int | None = None
    acknowledged_by: str | None = None
    resolved_ns: int | None = None
    closed_ns: int | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    timeline: tuple[TimelineEntry, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", MappingProxyType(dict(self.labels)))

    @property
    def is_open(self) -> bool:
        return self.state not in (IncidentState.RESOLVED, IncidentState.CLOSED)


@dataclass(frozen=True)
class Matcher:
    """Alertmanager-style label matcher: `name` `op` `value`, op one of = != =~ !~."""

    name: str
    op: str
    value: str

    def __post_init__(self) -> None:
        if self.op not in ("=", "!=", "=~", "!~"):
            raise ValueError(f"matcher operator {self.op!r} is not one of = != =~ !~")

    def __str__(self) -> str:
        return f'{self.name}{self.op}"{self.value}"'


@dataclass(frozen=True)
class Recurrence:
    """A weekly recurring window: on `weekdays` (0=Monday) from `start` ("HH:MM") for `duration_s`,
    in the time zone `timezone`."""

    weekdays: tuple[int, ...]
    start: str
    duration_s: float
    timezone: str = "UTC"


@dataclass(frozen=True)
class Silence:
    """Keeps matching alarms from being notified (they stay visible). One-off between
    `starts_ns` and `ends_ns`, or recurring inside that range when `recurrence` is set."""

    id: str
    matchers: tuple[Matcher, ...]
    starts_ns: int
    ends_ns: int
    author: str
    reason: str
    recurrence: Recurrence | None = None
    created_ns: int = 0
    expired_ns: int | None = None  # set when expired early by an operator


@dataclass(frozen=True)
class MaintenanceWindow:
    """Planned work on a component: it and everything downstream of it (power, cooling,
    containment) is covered; alarms there are shown as expected and not notified."""

    id: str
    component: str
    starts_ns: int
    ends_ns: int
    author: str
    reason: str
    recurrence: Recurrence | None = None
    created_ns: int = 0
    expired_ns: int | None = None


@dataclass(frozen=True)
class Notification:
    """One message to one receiver, as kept in the outbox (delivery status is visible)."""

    id: str
    idempotency_key: str
    receiver: str
    notifier: str
    action: IncidentAction
    incident_id: str | None
    status: DeliveryStatus
    created_ns: int
    attempts: int = 0
    next_attempt_ns: int | None = None
    delivered_ns: int | None = None
    last_error: str = ""
    payload: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "payload", MappingProxyType(dict(self.payload)))
