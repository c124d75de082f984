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

from dcops.analytics.fleet import FleetScorer

__all__ = ["StreamingScorer", "ScorerStats"]

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


class StreamingScorer:
    def __init__(self, bus: Bus, fleet: FleetScorer, interval_s: float = 10.0, group: str = "analytics",
                 lateness_s: float = 2.0, clock: Callable[[], float] = time.monotonic, consumer=None) -> None:
        self.bus = bus
        self.fleet = fleet
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
            self.fleet.set_models(models)

    # ----- loop -----------------------------------------------------------------------------
    def run_once(self, timeout_s: float = 0.5, max_records: int = 500) -> list[Finding]:
        self.accept(self.consumer.poll(timeout_s, max_records))
        findings = self.score_ready()
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
