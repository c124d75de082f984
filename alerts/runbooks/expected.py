"""Expected alarms of a runbook as silence matchers (pure).

While a run is active, the alarms its runbook lists under `expected_alarms` are silenced: they
stay in the alarm list, are not notified, and name the run in the silence's reason. A scope
becomes the narrowest alarm label that covers it: `row=~"R1"` for the rows a CRAC cools,
`rack=~"R1-01|R1-02"` for the racks a PDU feeds, `device=~"R2-01-S01"` for an accelerator's
server, `component=~...` otherwise.
"""

from __future__ import annotations

import re

from dcops.alerts.runbooks.checks import resolve_scope
from dcops.alerts.runbooks.models import Runbook, Scope
from dcops.topology import Inventory

__all__ = ["scope_label", "expected_alarm_silences"]

_LABEL_OF_KIND = {"row": "row", "rack": "rack", "server": "device", "hall": "hall"}


def scope_label(inventory: Inventory | None, scope: Scope, root: str) -> tuple[str, list[str]]:
    """An alarm label and the values of it that cover `scope` around `root`."""
    if inventory is None:
        return "component", [root]
    comps = resolve_scope(inventory, scope, root)
    kind = inventory.components[comps[0]].kind
    if kind == "zone":
        return "row", sorted({r for z in comps for r in inventory.rows_of_zone.get(z, ())})
    label = _LABEL_OF_KIND.get(kind, "component")
    if label == "component":
        return label, sorted(comps)
    return label, sorted({inventory.components[c].tags(inventory.site)[label] for c in comps})


def expected_alarm_silences(rb: Runbook, inventory: Inventory | None, root: str) -> list[tuple[list[str], str]]:
    """(matchers, reason) for each expected alarm of `rb` when run against `root`."""
    out = []
    for ea in rb.expected_alarms:
        label, values = scope_label(inventory, ea.scope, root)
        matchers = [f'probable_cause="{ea.probable_cause.value}"', f'{label}=~"{"|".join(re.escape(v) for v in values)}"']
        out.append((matchers, ea.reason))
    return out
