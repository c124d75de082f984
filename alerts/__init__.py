"""Alerts: alarms, rules, topology correlation, silences, routing, escalation, notifiers."""
