"""The local inference server's counters, read by the host agent and shared over its accelerators.

A host running `dcops agent` (NVML or an NPU tool) reads device health, but tokens and requests
are known only to the inference server (vLLM, SGLang) on that host. `ServingReader` fetches the
server's Prometheus endpoint (`dcops agent --serving-url http://127.0.0.1:8000/metrics`), parses it
with prometheus-client through the `serving` table of `prom_map.yaml` (the same mapping the
exporter scrape uses: `vllm:generation_tokens_total` -> `accel_tokens_total`, ...), and adds the
host's totals to the agent's `accel` batches, shared evenly over the accelerators that are up
(`share_evenly`, as `PromMapper` does for scraped hosts); counters are shared by their rise
each poll (`CounterShares`), so one accelerator going down does not make the others' counters
jump.

An endpoint that fails (connection refused, an HTTP error, text that does not parse) is logged
once, until it answers again; the accelerator rows still publish, with no serving counters that
round. Nothing here raises into the agent's poll.
"""

from __future__ import annotations

import logging
from typing import Callable, Mapping, Sequence

import numpy as np

from dcops.batch import Batch
from dcops.collectors.accel_common import CounterShares
from dcops.collectors.prom_scrape import PromParseError, add_serving_sample, fetch_text, parse_families

__all__ = ["SeriesMemo", "ServingReader", "serving_totals"]

log = logging.getLogger(__name__)


def _stem(name: str) -> str:
    return name[:-6] if name.endswith("_total") else name


def _serving_lines(text: str, stems: frozenset[str]) -> list[str]:
    """The sample lines of the series the `serving` table maps (a real vLLM page is mostly
    histogram buckets, dropped here before anything parses them)."""
    keep = []
    for line in text.splitlines():
        if line and not line.startswith("#") and _stem(line.split("{", 1)[0].split(None, 1)[0]) in stems:
            keep.append(line)
    return keep


class SeriesMemo:
    """Serving totals of exposition texts, each series line parsed by prometheus-client once.

    An inference server's series are the same every scrape; only the values change. The first
    time a line's series (`name{labels}`) is seen, the line goes through prometheus-client's
    parser and the `serving` table; the series is kept with its mapping when the parse confirms
    the line is `series value` (no timestamp). Later scrapes read just the value after the
    series. prometheus-client spends about 80 us on a labelled sample; 396 hosts a step add up."""

    max_series = 4096  # a server that invents label values forever does not grow this unbounded

    def __init__(self, serving: Mapping) -> None:
        self.serving = serving
        self.stems = frozenset(_stem(name) for name in serving)
        self._known: dict[str, tuple[str, float] | None] = {}

    def totals(self, text: str, where: str = "serving") -> dict[str, float]:
        """{catalogue metric: host total}; PromParseError for a line prometheus-client rejects."""
        totals: dict[str, float] = {}
        for line in _serving_lines(text, self.stems):
            series, _, raw = line.rpartition(" ")
            if series in self._known:
                spec = self._known[series]
                try:
                    value = float(raw)
                except ValueError:
                    spec, value = self._learn(series, line, where)
            else:
                spec, value = self._learn(series, line, where)
            if spec is not None:
                metric, scale = spec
                totals[metric] = totals.get(metric, 0.0) + value * scale
        return totals

    def _learn(self, series: str, line: str, where: str) -> tuple[tuple[str, float] | None, float]:
        samples = [smp for fam in parse_families(line + "\n", where) for smp in fam.samples]
        if len(samples) != 1:
            raise PromParseError(f"{where}: {line[:120]!r} is not one sample")
        smp = samples[0]
        found: dict[str, float] = {}
        add_serving_sample(self.serving, found, smp.name, _stem(smp.name), 1.0)
        spec = next(((m, scale) for m, scale in found.items()), None)
        if smp.timestamp is None and len(self._known) < self.max_series:
            self._known[series] = spec
        return spec, float(smp.value)


def serving_totals(text: str, serving: Mapping, where: str = "serving") -> dict[str, float]:
    """{catalogue metric: host total} of the serving series in one exposition text (pure)."""
    return SeriesMemo(serving).totals(text, where)


class ServingReader:
    """One host's inference-server endpoint; `annotate(batches)` each poll.

    `fetch` returns the exposition text (`fetch_text(url)` on a real host, a stand-in in the
    simulator); `serving` is `load_prom_map().serving`."""

    def __init__(self, fetch: Callable[[], str], serving: Mapping, host: str, where: str = "serving") -> None:
        self.fetch = fetch
        self.memo = SeriesMemo(serving)
        self.host = host
        self.where = where
        self.failing: str | None = None  # what went wrong last, while the endpoint fails
        self.shares = CounterShares()

    @classmethod
    def from_url(cls, url: str, serving: Mapping, host: str, timeout_s: float = 2.0) -> "ServingReader":
        return cls(lambda: fetch_text(url, timeout_s), serving, host, where=url)

    def totals(self) -> dict[str, float] | None:
        """This poll's host totals, or None when the endpoint fails (logged once per outage)."""
        try:
            totals = self.memo.totals(self.fetch(), self.where)
        except (ConnectionError, OSError, PromParseError) as exc:
            self._failed(str(exc))
            return None
        except Exception as exc:  # noqa: BLE001 - the serving side must never stop the accelerator rows
            self._failed(f"{type(exc).__name__}: {exc}")
            return None
        if not totals:
            self._failed("no serving series (vllm:generation_tokens_total, ...) in its text")
            return None
        if self.failing is not None:
            log.info("%s: inference server %s answers again", self.host, self.where)
            self.failing = None
        return totals

    def _failed(self, why: str) -> None:
        if self.failing is None:
            log.warning("%s: inference server %s unreadable, accelerators publish without tokens: %s",
                        self.host, self.where, why)
        self.failing = why

    def annotate(self, batches: Sequence[Batch]) -> list[Batch]:
        """The agent's `accel` batches with the serving counters added, shared over the up rows."""
        batches = list(batches)
        totals = self.totals() if batches else None
        if not totals:
            return batches
        up = np.concatenate([b.fields["accel_up"] == 1.0 for b in batches]).tolist()
        uuids = [str(u) for b in batches for u in b.tags["uuid"]]
        shares = self.shares.split(totals, uuids, up)
        if not shares:
            return batches
        out, start = [], 0
        for b in batches:
            n = len(b)
            added = {m: np.asarray(col[start:start + n], dtype=np.float64) for m, col in shares.items()}
            out.append(Batch(b.measurement, b.time_ns, b.tags, {**b.fields, **added}))
            start += n
        return out
