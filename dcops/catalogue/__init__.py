"""The metric catalogue: every measurement, field, unit and kind in one place, as data.

Each domain module declares a `METRICS` tuple of `Metric`; this package joins them and checks
that names are unique and follow the naming rule `<domain>_<thing>_<unit>` (counters end in
`_total`). Collectors, the store, analytics, alert rules and the console all refer to metric
names from here; `metric("accel_power_w")` fails loudly on a name that is not catalogued.
"""

from __future__ import annotations

from types import MappingProxyType

from dcops.catalogue import accel, bmc, cooling, env, events, power, server
from dcops.catalogue.types import CANONICAL_UNITS, Kind, Metric, Measurement

__all__ = [
    "CANONICAL_UNITS",
    "EVENT_KINDS",
    "Kind",
    "MEASUREMENTS",
    "METRICS",
    "Measurement",
    "Metric",
    "metric",
    "metrics_of",
]

_DOMAINS = (accel, server, power, cooling, env, bmc)


def _build():
    metrics: dict[str, Metric] = {}
    measurements: dict[str, Measurement] = {}
    for mod in _DOMAINS:
        for m in mod.MEASUREMENTS:
            if m.name in measurements:
                raise ValueError(f"measurement {m.name!r} declared twice")
            measurements[m.name] = m
        for x in mod.METRICS:
            if x.name in metrics:
                raise ValueError(f"metric {x.name!r} declared twice")
            if x.measurement not in measurements:
                raise ValueError(f"metric {x.name!r} names unknown measurement {x.measurement!r}")
            metrics[x.name] = x
    return MappingProxyType(metrics), MappingProxyType(measurements)


METRICS, MEASUREMENTS = _build()
EVENT_KINDS = events.EVENT_KINDS


def metric(name: str) -> Metric:
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(f"metric {name!r} is not in the catalogue (dcops.catalogue)") from None


def metrics_of(measurement: str) -> tuple[Metric, ...]:
    return tuple(m for m in METRICS.values() if m.measurement == measurement)
