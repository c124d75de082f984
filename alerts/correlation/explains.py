"""What explains what: the physics of power and cooling failures, as a table.

Each `Explains` row says: an alarm with a cause in `root_causes` on a component of a kind in
`root_kinds` explains alarms with a cause in `symptom_causes` on components it reaches
downstream (power: UPS > PDU > rack feed > rack PDU > rack > server > accelerator; cooling:
CRAC/CDU > zone > row > rack > server > accelerator), plus `same_component` causes on its own
component and `sibling_causes` on the units of its redundant group that carry its load (or,
for a root that is not lost, that lost mains within the clock skew of it: a common cause).

- `root_lost`: True when the root must say "this unit is out" (label `unit_lost: "true"`),
  False when it must not. A UPS on battery still carries its load, so it is a
  `power-degraded` root: it explains battery and load findings downstream, never breaker trips,
  dark racks or servers down; a UPS whose output is lost, a tripped PDU breaker or a dead bus
  is `power-lost`.
- `only_unpowered`: causes explained only in racks left without a live feed at the
  symptom's start (one feed lost means redundancy lost, not a dark rack);
  `only_powered`: causes explained only where the rack still had power (a CRAC does not
  explain servers that lost power).
- `drops_load`: what a degraded unit explains once it drops its load (a UPS whose battery ran
  out before a rule said "output lost"): only after the root started, never before.
- `rank`: among several roots that could explain one alarm, the lowest rank wins, then the
  earliest start, then the component name: never the alarm id or the input order.
"""

from __future__ import annotations

from dataclasses import dataclass

from dcops.alarm_types import ProbableCause as PC

__all__ = ["Explains", "EXPLAINS", "POWER_KINDS", "COOLING_KINDS", "HOST_LOSS", "POWER_CAUSES", "COOLING_CAUSES"]

POWER_KINDS = frozenset({"ups", "pdu", "rack_pdu"})
COOLING_KINDS = frozenset({"cooling", "zone"})

POWER_CAUSES = frozenset({PC.COMMERCIAL_POWER_FAILURE, PC.BATTERY_DISCHARGING, PC.BATTERY_FAILURE, PC.POWER_PROBLEM,
                          PC.POWER_SUPPLY_FAILURE})
COOLING_CAUSES = frozenset({PC.HEATING_VENT_COOLING, PC.FAN_FAILURE, PC.PRESSURE_UNACCEPTABLE, PC.LEAK_DETECTED})
# a host or accelerator gone: what losing power (or a server) does to what it feeds
HOST_LOSS = frozenset({PC.EQUIPMENT_MALFUNCTION, PC.UNDERLYING_RESOURCE_UNAVAILABLE, PC.LOSS_OF_SIGNAL,
                       PC.COMMUNICATIONS_FAILURE})
# analytics findings and load effects: what a degraded supply or a unit carrying more load shows
LOAD_EFFECTS = frozenset({PC.PERFORMANCE_DEGRADED, PC.RESOURCE_AT_OR_NEARING_CAPACITY, PC.THRESHOLD_CROSSED})


@dataclass(frozen=True)
class Explains:
    name: str
    root_kinds: frozenset[str]
    root_causes: frozenset[PC]
    symptom_causes: frozenset[PC]
    rank: int
    graph: str = "power"                          # the path named in explanations
    root_lost: bool | None = None
    only_unpowered: frozenset[PC] = frozenset()
    only_powered: frozenset[PC] = frozenset()
    same_component: frozenset[PC] = frozenset()
    sibling_causes: frozenset[PC] = frozenset()   # on units that take over a lost root's load
    # a degraded unit that later drops its load (a UPS whose battery ran out): causes explained
    # on servers, accelerators and racks only when the root started first and, for host losses,
    # every feed of the rack ran through a unit in this state or a lost one
    drops_load: frozenset[PC] = frozenset()
    # causes on siblings explained whenever they start after the root (within the clock skew
    # before it at most): the root's unit stopped carrying its load (an accelerator that failed,
    # a UPS whose battery ran out) and the siblings took it over
    sibling_load: frozenset[PC] = frozenset()

    def matches_root(self, kind: str, cause: PC, lost: bool) -> bool:
        return (kind in self.root_kinds and cause in self.root_causes
                and (self.root_lost is None or self.root_lost == lost))


EXPLAINS: tuple[Explains, ...] = (
    Explains("power-lost", POWER_KINDS, POWER_CAUSES,
             HOST_LOSS | LOAD_EFFECTS | {PC.POWER_PROBLEM, PC.POWER_SUPPLY_FAILURE, PC.LOSS_OF_REDUNDANCY,
                                          PC.BATTERY_DISCHARGING},
             rank=0, root_lost=True, only_unpowered=HOST_LOSS,
             same_component=POWER_CAUSES | LOAD_EFFECTS | {PC.LOSS_OF_REDUNDANCY},
             sibling_causes=LOAD_EFFECTS | {PC.POWER_PROBLEM, PC.POWER_SUPPLY_FAILURE, PC.LOSS_OF_REDUNDANCY,
                                            PC.TEMPERATURE_UNACCEPTABLE}),
    # an accelerator that failed (XID 79/48, lost, not answering): analytics findings on itself and on
    # the other accelerators of its server, which take over its share of the work, are its symptoms
    Explains("accel-fault", frozenset({"accel"}), frozenset({PC.EQUIPMENT_MALFUNCTION}), frozenset(),
             rank=2, graph="host", same_component=LOAD_EFFECTS | {PC.TEMPERATURE_UNACCEPTABLE},
             sibling_load=LOAD_EFFECTS),
    # a server's own hardware fault (a PSU, fans): analytics findings and thermal symptoms on the
    # server itself and on its accelerators
    Explains("server-fault", frozenset({"server"}),
             frozenset({PC.POWER_SUPPLY_FAILURE, PC.FAN_FAILURE, PC.EQUIPMENT_MALFUNCTION}),
             LOAD_EFFECTS | {PC.TEMPERATURE_UNACCEPTABLE}, rank=2, graph="host",
             same_component=LOAD_EFFECTS | {PC.TEMPERATURE_UNACCEPTABLE}),
    # one accelerator degrading (throttling, running hot): its later alarms, from other rules or the
    # analytics, are the same fault seen again on the same managed object, not a second incident
    Explains("accel-degraded", frozenset({"accel"}), LOAD_EFFECTS | {PC.TEMPERATURE_UNACCEPTABLE}, frozenset(),
             rank=5, graph="host", same_component=LOAD_EFFECTS | {PC.TEMPERATURE_UNACCEPTABLE}),
    Explains("host", frozenset({"server"}), frozenset({PC.UNDERLYING_RESOURCE_UNAVAILABLE}),
             HOST_LOSS | LOAD_EFFECTS, rank=1, graph="host", same_component=HOST_LOSS | LOAD_EFFECTS),
    Explains("power-degraded", POWER_KINDS,
             frozenset({PC.COMMERCIAL_POWER_FAILURE, PC.BATTERY_DISCHARGING, PC.BATTERY_FAILURE, PC.POWER_PROBLEM,
                        PC.RESOURCE_AT_OR_NEARING_CAPACITY}),
             LOAD_EFFECTS, rank=3, root_lost=False, drops_load=HOST_LOSS | {PC.POWER_SUPPLY_FAILURE},
             # the other UPS of the same racks losing mains within the clock skew: one utility outage
             sibling_causes=frozenset({PC.COMMERCIAL_POWER_FAILURE}),
             # ...and the other feed of its racks takes the load it drops when the battery runs out
             sibling_load=LOAD_EFFECTS,
             # the same UPS running its battery empty and dropping its load is the same incident
             same_component=POWER_CAUSES | LOAD_EFFECTS | {PC.LOSS_OF_REDUNDANCY}),
    Explains("cooling", COOLING_KINDS, COOLING_CAUSES | {PC.TEMPERATURE_UNACCEPTABLE},
             frozenset({PC.TEMPERATURE_UNACCEPTABLE, PC.HUMIDITY_UNACCEPTABLE, PC.HEATING_VENT_COOLING,
                        PC.EQUIPMENT_MALFUNCTION, PC.UNDERLYING_RESOURCE_UNAVAILABLE}) | LOAD_EFFECTS,
             rank=4, graph="cooling",
             only_powered=frozenset({PC.EQUIPMENT_MALFUNCTION, PC.UNDERLYING_RESOURCE_UNAVAILABLE}),
             same_component=COOLING_CAUSES | LOAD_EFFECTS | {PC.TEMPERATURE_UNACCEPTABLE},
             sibling_causes=COOLING_CAUSES | LOAD_EFFECTS | {PC.TEMPERATURE_UNACCEPTABLE},
             # a unit losing capacity without stopping (a clogging filter, a drifting coil) sheds
             # heat on its zone-mates: their supply running warmer later is its symptom, a
             # zone-mate that stops is not (a unit lost is its own fault)
             sibling_load=LOAD_EFFECTS | {PC.HEATING_VENT_COOLING, PC.TEMPERATURE_UNACCEPTABLE}),
    Explains("rack-heat", frozenset({"rack", "row"}), frozenset({PC.TEMPERATURE_UNACCEPTABLE}),
             frozenset({PC.TEMPERATURE_UNACCEPTABLE, PC.PERFORMANCE_DEGRADED, PC.EQUIPMENT_MALFUNCTION}),
             rank=5, graph="cooling", only_powered=frozenset({PC.EQUIPMENT_MALFUNCTION})),
)
