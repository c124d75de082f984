"""Alerts, folder by folder in the order a signal flows through them:

- `rules/`: rule files, schemas and one evaluator per rule type (telemetry, events, findings -> signals);
- `inbound.py`: signals from an existing Alertmanager;
- `alarms/`: signals -> alarms (dedup, flapping), matchers, silences and maintenance windows;
- `correlation/`: which alarm explains which along power and cooling; incidents from the groups;
- `notification/`: routing, on-call, escalation, notifiers and the durable outbox;
- `runbooks/`: methods of procedure run step by step on an incident;
- `history/`: MTTA/MTTR, recurring offenders, postmortems, similar incidents;
- `storage/`: the tables, the alerter's writes, the read API (console, runbooks), the audit log;
- `pipeline.py` (pure: signals -> incidents -> planned notifications) and `service.py` (the
  alerter role around it); `config.py`: the alerting config (receivers, routes, tuning).
"""
