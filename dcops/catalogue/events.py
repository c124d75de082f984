"""Event kinds: discrete things that happen, as opposed to periodic samples."""

from types import MappingProxyType

EVENT_KINDS = MappingProxyType({
    "xid": "An NVIDIA XID error reported by the driver (attributes: xid, meaning, action).",
    "accel_lost": "An accelerator stopped answering (GPU fallen off the bus, NPU reset).",
    "accel_recovered": "A lost accelerator answers again.",
    "snmp_trap": "An SNMP trap or inform (attributes: trap_oid, mapped name).",
    "agent_unreachable": "A polled agent (SNMP, exporter) stopped answering.",
    "agent_recovered": "A polled agent answers again.",
    "ups_on_battery": "A UPS switched to battery.",
    "ups_on_utility": "A UPS returned to utility power.",
    "ups_battery_low": "A UPS reports its battery low or depleted (SNMP trap).",
    "ups_battery_ok": "A UPS battery is no longer low.",
    "ups_overload": "A UPS output is overloaded (SNMP trap).",
    "ups_overload_cleared": "A UPS output overload cleared.",
    "pdu_overload": "A PDU load exceeds its threshold (SNMP trap).",
    "pdu_overload_cleared": "A PDU overload cleared.",
    "ups_output_off": "A UPS dropped its load: output off (inverter/output fault, upsAlarmOutputOff).",
    "ups_output_on": "A UPS's output is on again.",
    "breaker_trip": "A PDU breaker tripped.",
    "breaker_closed": "A PDU breaker was closed again.",
    "cooling_fault": "A cooling unit stopped or raised an alarm.",
    "cooling_recovered": "A cooling unit runs normally again.",
    "psu_fault": "A server PSU stopped delivering power.",
    "psu_recovered": "A server PSU delivers power again.",
    "fan_fault": "A server fan failed or stopped (BMC; attributes: fan).",
    "fan_recovered": "A failed server fan runs again.",
    "bmc_log": "An entry of a server BMC's log (SEL, event log) or a Redfish EventService event (attributes: message_id, log, entry).",
    "telemetry_rejected": "A collector reported a value no sensor can mean (negative power, infinite temperature...); the value is kept here, not as telemetry.",
    "fault_injected": "The simulator injected a fault (ground truth, never used by detectors).",
    "fault_cleared": "The simulator cleared a fault.",
})
