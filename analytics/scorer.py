"""The streaming scorer: samples from the bus in, findings to the bus out.

Batches arrive per measurement and per poll, so they are gathered into intervals first: each
batch goes to the bucket `floor(time / interval)`. A bucket is scored (oldest first) when a
newer bucket has started and the newest message is `lateness_s` old, or when `flush()` is
called. Findings of one interval are published as one frame on `findings` (key: the interval
start), then the consumer commits.

Delivery: offsets are committed only when no bucket is left pending, i.e. after every message
read so far has been scored and its findings handed to the bus (and flushed). A crash before
that re-delivers the uncommitted samples, which are scored again: at-least-once, so a finding
can repeat; alerts deduplicate on (component, detector, time). A message that cannot be
decoded goes to the dead-letter topic with a header saying where it came from and why.

Beyond one node, N scorers share `samples` in one consumer group, each with a `RackScope`: it
scores the racks whose partitions it holds (samples are keyed by rack) with a `FleetScorer` over
that part of the inventory, and rebuilds it when a rebalance changes them. Intervals still pending
from the racks it had are scored (and published) first; samples of partitions it lost were not
committed, so their new owner scores them again (a finding may repeat, as after a crash). A
rebuilt scorer starts its online baselines afresh (`ScorerParams.warmup` intervals); trained
models apply at once.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

from dcops.batch import Batch
from dcops.bus import TOPIC_DEADLETTER, TOPIC_FINDINGS, TOPIC_SAMPLES, Bus
from dcops.codec import CodecError, decode
from dcops.findings import Finding, encode_findings
from dcops.ingest import dead_letter_envelope

from dcops.analytics.fleet import FleetScorer, ScorerParams
from dcops.analytics.models import ModelBundle
from dcops.topology import Inventory

__all__ = ["RackScope", "StreamingScorer", "ScorerStats"]

log = logging.getLogger(__name__)
NS = 1_000_000_000


@dataclass
class ScorerStats:
    messages: int = 0
    intervals: int = 0
    findings: int = 0
    dead_letters: int = 0
    late_batches: int = 0
    last_score_s: float = 0.0
    rescoped: int = 0  # times the racks this scorer owns changed (joins and rebalances)


class RackScope:
    """The part of the site one member of the scoring group owns: the racks whose partitions of
    `samples` its consumer holds, and every hall's shared equipment (UPS, PDU, cooling: their
    samples are keyed by device or not keyed, so each reaches one member only). Accelerator peers
    are compared within a host or rack, so they stay whole."""

    def __init__(self, inventory: Inventory, models: ModelBundle | None = None,
                 params: ScorerParams = ScorerParams()) -> None:
        self.inventory = inventory
        self.models = models
        self.params = params
        self.racks: tuple[str, ...] = ()
        self.held = False
        self._names = [r.name for r in inventory.racks]
        self._assignment: set | None = None

    def follow(self, consumer) -> bool:
        """Look at what `consumer` holds now; True when its racks changed since the last look
        (hashing every rack's key only when its partitions changed: this runs after each poll)."""
        assignment = consumer.assignment()
        if assignment == self._assignment:
            return False
        self._assignment = assignment
        held = bool(assignment)
        racks = tuple(consumer.owned(TOPIC_SAMPLES, self._names)) if held else ()
        if (held, racks) == (self.held, self.racks):
            return False
        self.held, self.racks = held, racks
        return True

    def fleet(self) -> FleetScorer | None:
        """A scorer over the racks owned now (None while the consumer holds no partition)."""
        if not self.held:
            return None
        return FleetScorer(self.inventory.for_racks(self.racks), self.models, self.params)


class StreamingScorer:
    def __init__(self, bus: Bus, fleet: FleetScorer | None, interval_s: float = 10.0, group: str = "analytics",
                 lateness_s: float = 2.0, clock: Callable[[], float] = time.monotonic, consumer=None,
                 scope: RackScope | None = None) -> None:
        """`fleet` scores everything this consumer reads; or give `scope` (and `fleet=None`) to
        score only the racks of the partitions it holds, rebuilt after each rebalance."""
        if (fleet is None) == (scope is None):
            raise ValueError("give a FleetScorer or a RackScope, not both or neither")
        self.bus = bus
        self.fleet = fleet
        self.scope = scope
        self.interval_ns = int(interval_s * NS)
        self.lateness_s = lateness_s
        self.clock = clock
        self.consumer = consumer if consumer is not None else bus.consumer([TOPIC_SAMPLES], group)
        self.stats = ScorerStats()
        self._pending: dict[int, list[Batch]] = {}
        self._last_message = clock()
        self._scored_up_to = -1  # buckets at or below this are done; later samples for them are late
        self._lock = threading.Lock()  # set_models from the retraining thread vs scoring
        self._stop = threading.Event()
        from dcops.metrics import current

        m = current()
        self._m_score = m.get("scoring_seconds").labels(detector="fleet")  # one pass scores every detector
        self._m_findings = m.get("findings_out")

    # ----- pure-ish steps -------------------------------------------------------------------
    def accept(self, messages) -> None:
        for m in messages:
            self.stats.messages += 1
            try:
                item = decode(m.value)
            except CodecError as exc:
                self.stats.dead_letters += 1
                self.bus.publish(TOPIC_DEADLETTER, m.key, dead_letter_envelope(m, str(exc), stage="analytics"))
                continue
            if not isinstance(item, Batch) or len(item) == 0:
                continue  # events travel on their own topic; nothing to score here
            self._last_message = self.clock()
            for bucket in set((item.time_ns // self.interval_ns).tolist()):
                if bucket <= self._scored_up_to:
                    self.stats.late_batches += 1  # too late for its interval; the store still has it
                    continue
                sel = (item.time_ns // self.interval_ns) == bucket
                self._pending.setdefault(bucket, []).append(item if sel.all() else item.select(sel))

    def ready(self, force: bool = False) -> list[int]:
        """Buckets that can be scored now, oldest first."""
        if not self._pending:
            return []
        buckets = sorted(self._pending)
        quiet = self.clock() - self._last_message >= self.lateness_s
        if force or quiet:
            return buckets
        return buckets[:-1]  # a newer interval has started: the older ones are complete

    def score_ready(self, force: bool = False) -> list[Finding]:
        out: list[Finding] = []
        for bucket in self.ready(force):
            batches = self._pending.pop(bucket)
            t0 = time.process_time()
            with self._lock:
                findings = self.fleet.score(batches)
            self.stats.last_score_s = time.process_time() - t0
            self._m_score.observe(self.stats.last_score_s)
            self.stats.intervals += 1
            self._scored_up_to = bucket
            if findings:
                self.bus.publish(TOPIC_FINDINGS, str(bucket * self.interval_ns), encode_findings(findings))
                self.stats.findings += len(findings)
                for f in findings:
                    self._m_findings.labels(detector=f.detector).inc()
            out.extend(findings)
        return out

    def set_models(self, models) -> None:
        with self._lock:
            if self.scope is not None:
                self.scope.models = models
            if self.fleet is not None:
                self.fleet.set_models(models)

    def follow_assignment(self) -> list[Finding]:
        """With a scope: when the racks owned changed, score what is pending from the racks held
        until now (its findings are returned) and rebuild the scorer for the new ones."""
        if self.scope is None or not self.scope.follow(self.consumer):
            return []
        findings = self.score_ready(force=True)
        with self._lock:
            self.fleet = self.scope.fleet()
        self._scored_up_to = -1  # the new scorer has scored nothing: redelivered samples are not late
        self.stats.rescoped += 1
        log.info("analytics now scores %d racks (%d accelerators)", len(self.scope.racks),
                 self.fleet.inventory.n_accel if self.fleet is not None else 0)
        return findings

    # ----- loop -----------------------------------------------------------------------------
    def run_once(self, timeout_s: float = 0.5, max_records: int = 500) -> list[Finding]:
        messages = self.consumer.poll(timeout_s, max_records)
        findings = self.follow_assignment()  # a rebalance happens inside poll()
        self.accept(messages)
        findings += self.score_ready()
        if not self._pending:
            self.bus.flush()
            self.consumer.commit()
        return findings

    def flush(self) -> list[Finding]:
        findings = self.score_ready(force=True)
        self.bus.flush()
        self.consumer.commit()
        return findings

    def run(self, stop: threading.Event | None = None) -> None:
        stop = stop or self._stop
        while not stop.is_set() and not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # keep scoring; the message stays uncommitted and comes again
                log.exception("analytics scoring step failed")
                stop.wait(1.0)

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self.consumer.close()
