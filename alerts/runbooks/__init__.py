"""Runbooks: methods of procedure as YAML, attached to incidents and run step by step.

- `models`: the schema (applies-to, impact, expected alarms, prechecks, steps, verification,
  rollback, sign-off; manual / check / action steps);
- `loader`: YAML loading with file/line/field errors, and which runbooks apply to an alarm;
- `executors`: the explicit `EXECUTORS` registry (webhook, command, gpu_power_cap, drain_node);
- `checks`: telemetry conditions evaluated through the Store;
- `engine`: `RunbookEngine`, the run API the console calls (user and role on every call).

Import the submodules directly; nothing is imported, loaded or connected here.
"""
