"""BMC logs (SEL, event logs) read incrementally, and Redfish EventService events, as dcops events.

`read_logs(fetch, cursors)` walks every `LogServices/*/Entries` of the Managers and Systems,
and returns the entries not seen before with the new cursors. A cursor per log holds the ids
already reported (entries are immutable; BMCs number them): saved by the poller to a state
file, so a restart repeats nothing. The first contact with a log takes its current entries as
seen, unless they are younger than `first_contact_s` (a BMC's years of history is no news).

An entry's text is its `Message`; where a BMC gives only a `MessageId` and `MessageArgs`, the
text is resolved through the BMC's own message registries (`/redfish/v1/Registries`).
Severity: Redfish OK/Warning/Critical -> info/warning/critical.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Iterable, Mapping

from dcops.collectors.redfish_map import RedfishFetchError, norm_path

__all__ = ["LogEntry", "read_logs", "entry_from_event", "SEVERITY"]

SEVERITY = {"OK": "info", "Warning": "warning", "Critical": "critical"}
_MAX_SEEN = 5000


@dataclass(frozen=True)
class LogEntry:
    log: str             # the LogService path
    entry_id: str
    time_ns: int | None  # None when the BMC's timestamp is unusable (e.g. 0000-00-00)
    severity: str        # info | warning | critical
    message: str
    message_id: str
    origin: str          # OriginOfCondition path, "" when none


def _time_ns(text) -> int | None:
    if not isinstance(text, str) or text.startswith("0000"):
        return None
    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1e9)
    except ValueError:
        return None


def _members(fetch, path: str | None) -> Iterable[dict]:
    if path is None:
        return
    try:
        coll = fetch(path)
    except RedfishFetchError:
        return
    if not isinstance(coll, dict):
        return
    for m in coll.get("Members") or []:
        if isinstance(m, dict) and isinstance(m.get("@odata.id"), str):
            if "Id" in m and len(m) > 2:  # embedded (HPE iLO embeds whole entries)
                yield m
                continue
            try:
                doc = fetch(norm_path(m["@odata.id"]))
            except RedfishFetchError:
                continue
            if isinstance(doc, dict) and "error" not in doc:
                yield doc


def _link(doc: dict, key: str) -> str | None:
    v = doc.get(key)
    return norm_path(v["@odata.id"]) if isinstance(v, dict) and isinstance(v.get("@odata.id"), str) else None


class _Registries:
    """MessageId -> text through the BMC's registries, loaded on first need."""

    def __init__(self, fetch) -> None:
        self.fetch, self.messages = fetch, None

    def text(self, message_id: str, args) -> str:
        if self.messages is None:
            self.messages = {}
            try:
                root = self.fetch("/redfish/v1") or {}
            except RedfishFetchError:
                root = {}
            for reg in _members(self.fetch, _link(root, "Registries")):
                for loc in reg.get("Location") or []:
                    uri = loc.get("Uri") if isinstance(loc, dict) else None
                    try:
                        doc = self.fetch(norm_path(uri)) if uri else None
                    except RedfishFetchError:
                        doc = None
                    if isinstance(doc, dict) and isinstance(doc.get("Messages"), dict):
                        prefix = f"{doc.get('RegistryPrefix', '')}."
                        for key, m in doc["Messages"].items():
                            if isinstance(m, dict):
                                self.messages[prefix + key] = str(m.get("Message", ""))
        parts = message_id.split(".")
        template = self.messages.get(f"{parts[0]}.{parts[-1]}") if len(parts) >= 2 else None
        if not template:
            return message_id
        args = [str(a) for a in (args or [])]
        return re.sub(r"%(\d+)", lambda m: args[int(m.group(1)) - 1] if 0 < int(m.group(1)) <= len(args) else m.group(0),
                      template)


def _entry(log: str, e: Mapping, registries: _Registries) -> LogEntry:
    origin = ((e.get("Links") or {}).get("OriginOfCondition") or {}) if isinstance(e.get("Links"), dict) else {}
    message = e.get("Message")
    if not message and e.get("MessageId"):
        message = registries.text(str(e["MessageId"]), e.get("MessageArgs"))
    return LogEntry(log, str(e.get("Id")), _time_ns(e.get("EventTimestamp") or e.get("Created")),
                    SEVERITY.get(str(e.get("Severity")), "info"), str(message or e.get("Name") or ""),
                    str(e.get("MessageId") or e.get("EntryCode") or ""),
                    norm_path(origin["@odata.id"]) if isinstance(origin.get("@odata.id"), str) else "")


def read_logs(fetch: Callable[[str], dict | None], cursors: dict[str, list[str]] | None, now_ns: int,
              first_contact_s: float = 3600.0) -> tuple[list[LogEntry], dict[str, list[str]]]:
    """New entries of every log since `cursors` (None: report every entry, for one-off reads)."""
    root = fetch("/redfish/v1") or {}
    registries = _Registries(fetch)
    out: list[LogEntry] = []
    new_cursors: dict[str, list[str]] = {}
    for owner in ("Managers", "Systems"):
        for res in _members(fetch, _link(root, owner)):
            for svc in _members(fetch, _link(res, "LogServices")):
                log = norm_path(svc.get("@odata.id", ""))
                entries = [_entry(log, e, registries) for e in _members(fetch, _link(svc, "Entries"))]
                seen = None if cursors is None else cursors.get(log)
                if seen is None and cursors is not None:  # first contact: only recent entries are news
                    fresh = [x for x in entries if x.time_ns is not None   # BMC clocks run a little ahead at times
                             and -300e9 <= now_ns - x.time_ns <= first_contact_s * 1e9]
                else:
                    known = set(seen or ())
                    fresh = [x for x in entries if x.entry_id not in known]
                out += fresh
                ids = list(dict.fromkeys([*(seen or ()), *(x.entry_id for x in entries)]))
                new_cursors[log] = ids[-_MAX_SEEN:]
    return out, new_cursors


def entry_from_event(payload: Mapping, now_ns: int) -> list[LogEntry]:
    """A Redfish EventService push (`Event` resource with `Events[]`) as entries."""
    events = payload.get("Events")
    if not isinstance(events, list):
        raise ValueError("not a Redfish Event: no 'Events' array")
    out = []
    for i, e in enumerate(events):
        if not isinstance(e, dict):
            raise ValueError(f"Events[{i}] is not an object")
        origin = e.get("OriginOfCondition") if isinstance(e.get("OriginOfCondition"), dict) else {}
        out.append(LogEntry("EventService", str(e.get("EventId") or payload.get("Id") or i),
                            _time_ns(e.get("EventTimestamp")) or now_ns,
                            SEVERITY.get(str(e.get("MessageSeverity") or e.get("Severity")), "info"),
                            str(e.get("Message") or e.get("MessageId") or ""), str(e.get("MessageId") or ""),
                            norm_path(origin["@odata.id"]) if isinstance(origin.get("@odata.id"), str) else ""))
    return out
