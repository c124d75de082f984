"""Prometheus text scrape: dcgm-exporter, NPU exporters and inference servers -> `accel` batches.

For fleets that already run dcgm-exporter (or an NPU exporter) there is no need for our own
agent: `PromMapper` reads the exposition text with prometheus-client's parser and maps each
listed series to the metric catalogue through `collectors/data/prom_map.yaml`. Accelerators
are identified by the labels the source names (dcgm: `UUID`, `gpu`, `modelName`,
`Hostname`); MIG instance series are left out of device rows.

- XIDs, as dcgm-exporter really exports them (its `etc/default-counters.csv`): the counter
  `DCGM_EXP_XID_ERRORS_TOTAL{xid=...}` (errors since the exporter started, newer exporters)
  is summed into `accel_xid_total`; the gauge `DCGM_EXP_XID_ERRORS_COUNT{xid=...}` (errors
  within the exporter's `--xid-count-window-size`, older exporters, disabled by default) is
  read only for events. Each increase between two scrapes becomes an `xid` event with the
  XID catalogue's advice (the counter when the exporter has it, else the window gauge: a fall
  of the gauge is the window moving on, not news). `DCGM_FI_DEV_XID_ERRORS` is the last XID's
  number only (a gauge that misses repeats), kept as `accel_xid_last`.
- Inference servers' generation-token counters (`vllm:generation_tokens_total`) are shared
  evenly among the accelerators the engine serves on (all of the host's by default), as
  `accel_tokens_total`, so energy per token compares between GPUs and NPUs (each scrape's
  rise is shared, `CounterShares`, so the shares only grow).

Parsing and mapping are pure (`PromMapper.map(texts, time_ns)`); `PromScraper` adds HTTP
(httpx) and `agent_unreachable` / `agent_recovered` events for targets that stop answering.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal, Mapping, Sequence

from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel, ConfigDict, Field, field_validator

from dcops.batch import Batch, Event, Severity
from dcops.catalogue import METRICS
from dcops.topology import Inventory
from dcops.yamlconf import load_yaml
from dcops.collectors.accel_common import CounterShares, accel_targets, build_accel_batch
from dcops.collectors.xid_events import XidCatalogue, load_xid_catalogue, xid_event

__all__ = ["PROM_MAP_PATH", "PromMap", "PromMapper", "PromParseError", "PromScraper", "add_serving_sample",
           "load_prom_map", "parse_families"]

log = logging.getLogger(__name__)
PROM_MAP_PATH = Path(__file__).parent / "data" / "prom_map.yaml"


class PromParseError(ValueError):
    """Exposition text that prometheus-client cannot parse."""


def _accel_metric(v: str) -> str:
    if v not in METRICS or METRICS[v].measurement != "accel":
        raise ValueError(f"metric {v!r} is not an accel metric in the catalogue")
    return v


class _Series(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    metric: str
    scale: float = 1.0
    combine: Literal["set", "sum"] = "set"
    per_card: bool = False

    @field_validator("metric")
    @classmethod
    def _catalogued(cls, v: str) -> str:
        return _accel_metric(v)


class _Labels(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    uuid: str
    index: str
    model: str = ""
    host: str = ""
    card: str = ""


class _Source(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    vendor: str = Field(min_length=1)
    labels: _Labels
    skip_labels: tuple[str, ...] = ()
    xid_counter: str | None = None
    xid_window: str | None = None  # a gauge: XID errors within the exporter's window, label `xid`
    series: dict[str, _Series] = Field(min_length=1)


class PromMap(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    sources: dict[str, _Source] = Field(min_length=1)
    serving: dict[str, _Series] = Field(default_factory=dict)


def load_prom_map(path: str | Path = PROM_MAP_PATH) -> PromMap:
    return load_yaml(path, PromMap)


@dataclass
class _Row:
    vendor: str
    uuid: str
    index: int
    model: str
    host: str
    card: str
    values: dict


def parse_families(text: str, where: str):
    """prometheus-client's metric families of an exposition text; PromParseError naming `where`."""
    try:
        return list(text_string_to_metric_families(text))
    except (ValueError, IndexError, KeyError) as exc:
        raise PromParseError(f"{where}: not Prometheus text exposition: {exc}") from None


def add_serving_sample(serving: Mapping[str, _Series], totals: dict[str, float], name: str, family: str,
                       value: float) -> bool:
    """Add one sample to `totals` when the `serving` table maps it (by sample or family name).

    Labels (`model_name`, `finished_reason`, `engine`) are summed over. False: not a serving series."""
    spec = serving.get(name) or serving.get(family)
    if spec is None:
        return False
    totals[spec.metric] = totals.get(spec.metric, 0.0) + float(value) * spec.scale
    return True


class PromMapper:
    """Maps the exposition texts of one host's exporters to one `accel` batch and events."""

    def __init__(self, pmap: PromMap, host: str, inventory: Inventory | None = None,
                 serving_accels: Sequence[int] | None = None, xids: XidCatalogue | None = None,
                 source: str = "prom") -> None:
        self.pmap = pmap
        self.host = host
        self.inventory = inventory
        self.serving_accels = None if serving_accels is None else tuple(int(i) for i in serving_accels)
        self.xids = xids
        self.source = source
        self.problems: list[str] = []
        self._lookup: dict[str, tuple[str, _Series]] = {}
        for sname, src in pmap.sources.items():
            for series, spec in src.series.items():
                self._lookup[series] = (sname, spec)
        self._xid_counts: dict[tuple[str, int], float] | None = None
        self._shares = CounterShares()

    def _find(self, sample_name: str, family: str):
        hit = self._lookup.get(sample_name)
        if hit is None and sample_name.endswith("_total"):
            hit = self._lookup.get(sample_name[:-6])  # prometheus-client appends _total to counters
        return hit or self._lookup.get(family)

    def map(self, texts: Sequence[tuple[str, str]], time_ns: int) -> tuple[Batch | None, list[Event]]:
        """`texts`: (where, exposition text) per scraped endpoint. Returns (batch or None, events)."""
        self.problems = []
        rows: dict[tuple[str, str], _Row] = {}
        tokens: dict[str, float] = {}
        xid_now: dict[tuple[str, int], float] = {}
        xid_window: dict[tuple[str, int], float] = {}
        windows = {src.xid_window: src for src in self.pmap.sources.values() if src.xid_window}
        first_die: dict[tuple[str, str], str] = {}
        for where, text in texts:
            for fam in parse_families(text, where):
                for s in fam.samples:
                    if s.name.endswith("_created"):
                        continue
                    if add_serving_sample(self.pmap.serving, tokens, s.name, fam.name, s.value):
                        continue
                    win = windows.get(s.name)
                    if win is not None:
                        uuid, xid = s.labels.get(win.labels.uuid, ""), s.labels.get("xid", "")
                        if uuid and xid.isdigit():
                            xid_window[(uuid, int(xid))] = float(s.value)
                        continue
                    hit = self._find(s.name, fam.name)
                    if hit is None:
                        continue
                    sname, spec = hit
                    src = self.pmap.sources[sname]
                    lab = s.labels
                    if any(lab.get(k) for k in src.skip_labels):
                        continue
                    uuid, idx = lab.get(src.labels.uuid, ""), lab.get(src.labels.index, "")
                    if not uuid or not idx.isdigit():
                        self.problems.append(f"{where}: {s.name} lacks accelerator labels "
                                             f"{src.labels.uuid!r}/{src.labels.index!r}; sample ignored")
                        continue
                    host = lab.get(src.labels.host, "") or self.host
                    key = (src.vendor, uuid)
                    row = rows.get(key)
                    if row is None:
                        row = rows[key] = _Row(src.vendor, uuid, int(idx), lab.get(src.labels.model, ""), host,
                                               lab.get(src.labels.card, "") if src.labels.card else "", {})
                    if spec.per_card and row.card:
                        owner = first_die.setdefault((src.vendor, row.card), uuid)
                        if owner != uuid:  # the card's value is kept on its first listed die
                            continue
                    value = float(s.value) * spec.scale
                    if spec.combine == "sum":
                        row.values[spec.metric] = row.values.get(spec.metric, 0.0) + value
                    else:
                        row.values[spec.metric] = value
                    if src.xid_counter and s.name in (src.xid_counter, src.xid_counter + "_total") and lab.get("xid", "").isdigit():
                        xid_now[(uuid, int(lab["xid"]))] = float(s.value)
        if not rows:
            if tokens:
                self.problems.append(f"{self.host}: serving counters but no accelerator series to attribute them to")
            return None, []
        ordered = sorted(rows.values(), key=lambda r: (r.vendor, r.index))
        self._share_tokens(ordered, tokens)
        targets = accel_targets(self.host, [r.index for r in ordered], [r.vendor for r in ordered],
                                [r.model for r in ordered], [r.uuid for r in ordered], self.inventory)
        columns = tuple(dict.fromkeys(["accel_up"] + [m for r in ordered for m in r.values]))
        col = {m: j for j, m in enumerate(columns)}
        out_rows = []
        for r in ordered:
            vals = [math.nan] * len(columns)
            vals[0] = 1.0
            for m, v in r.values.items():
                vals[col[m]] = v
            out_rows.append(vals)
        events = self._xid_events(xid_now or xid_window, {r.uuid: t for r, t in zip(ordered, targets)}, time_ns)
        return build_accel_batch(time_ns, targets, columns, out_rows), events

    def _share_tokens(self, rows: list[_Row], tokens: Mapping[str, float]) -> None:
        serving = [self.serving_accels is None or r.index in self.serving_accels for r in rows]
        for metric, shares in self._shares.split(tokens, [r.uuid for r in rows], serving).items():
            for r, share, s in zip(rows, shares, serving):
                if s:
                    r.values[metric] = share

    def _xid_events(self, now: dict[tuple[str, int], float], targets, time_ns: int) -> list[Event]:
        before, self._xid_counts = self._xid_counts, now
        if before is None:  # first scrape: a baseline, not news
            return []
        if self.xids is None:
            self.xids = load_xid_catalogue()
        events = []
        for (uuid, xid), count in sorted(now.items()):
            delta = count - before.get((uuid, xid), 0.0)
            if delta > 0:
                info = self.xids.lookup(xid)
                events.append(xid_event(info, time_ns, targets.get(uuid, {}), self.source, uuid,
                                        detail=f"{int(delta)} new in dcgm-exporter's XID series"))
        return events


def fetch_text(url: str, timeout_s: float = 5.0) -> str:
    """GET an exposition endpoint; failures raise ConnectionError naming the URL."""
    import httpx

    try:
        r = httpx.get(url, timeout=timeout_s, headers={"Accept": "text/plain;version=0.0.4"})
        r.raise_for_status()
    except httpx.HTTPError as exc:
        raise ConnectionError(f"scrape of {url} failed: {exc}") from None
    return r.text


class PromScraper:
    """Scrapes a host's endpoints each poll; a target that stops answering is an event, once."""

    def __init__(self, urls: Sequence[str], mapper: PromMapper, clock: Callable[[], int] = time.time_ns,
                 fetch: Callable[[str], str] = fetch_text) -> None:
        self.urls = tuple(urls)
        self.mapper = mapper
        self.clock = clock
        self.fetch = fetch
        self._down: set[str] = set()

    def poll(self) -> tuple[Batch | None, list[Event]]:
        now = self.clock()
        texts, events = [], []
        target = {"site": "", "device": self.mapper.host}
        for url in self.urls:
            try:
                texts.append((url, self.fetch(url)))
            except ConnectionError as exc:
                if url not in self._down:
                    self._down.add(url)
                    events.append(Event(now, "agent_unreachable", self.mapper.source, target, Severity.MAJOR,
                                        str(exc), {"url": url}))
                continue
            if url in self._down:
                self._down.discard(url)
                events.append(Event(now, "agent_recovered", self.mapper.source, target, Severity.CLEARED,
                                    f"{url} answers again", {"url": url}))
        batch, xid_events = self.mapper.map(texts, now) if texts else (None, [])
        return batch, events + xid_events


def site_targets(cfg) -> dict[str, str]:
    """{server: metrics URL} for every server whose `agent:` names an exporter (host:port or URL)."""
    out = {}
    for hall in cfg.halls:
        for row in hall.rows:
            for rack in row.racks:
                for srv in cfg.servers_of(rack):
                    if srv.agent:
                        url = srv.agent if "://" in srv.agent else f"http://{srv.agent}/metrics"
                        out[srv.name] = url
    return out


def run_role(cfg, stop, bus=None, fetch: Callable[[str], str] = fetch_text) -> None:
    """Scrape every server's exporter (`agent:` in the site) each interval and publish.

    For fleets running dcgm-exporter / an NPU exporter instead of `dcops agent`. Batches are
    keyed by rack; an exporter that stops answering is an `agent_unreachable` event, once."""
    from dcops.bus import publish_batch, publish_events
    from dcops.topology import build_inventory

    inv = build_inventory(cfg)
    pmap = load_prom_map()
    xids = load_xid_catalogue()
    scrapers = [(inv.get(name).rack, PromScraper([url], PromMapper(pmap, name, inv, xids=xids), fetch=fetch))
                for name, url in site_targets(cfg).items()]
    own_bus = bus is None
    if own_bus:
        from dcops.wiring import open_bus

        bus = open_bus(cfg.settings.bus, client_id="prom-scrape")
    try:
        while True:
            for rack, scraper in scrapers:
                try:
                    batch, events = scraper.poll()
                except PromParseError as exc:
                    log.warning("%s", exc)
                    continue
                if batch is not None:
                    publish_batch(bus, batch, key=rack)
                publish_events(bus, events, key=rack)
            if stop.wait(cfg.settings.interval_s):
                break
    finally:
        if own_bus:
            bus.flush()
            bus.close()
