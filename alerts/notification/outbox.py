"""The durable outbox sender: delivers what the alerter wrote, retries until it gets through.

Semantics:
- Every notification is a row in the `outbox` table, written in the same transaction as the
  alarm/incident change that caused it, BEFORE anything is sent. A crash loses nothing: the
  row is still pending and is sent after the restart.
- Delivery is at-least-once; each request carries the row's idempotency key
  (`Idempotency-Key` header, PagerDuty dedup_key, e-mail Message-ID) so receivers drop
  repeats. Once a receiver answers 2xx the row is `delivered` and never sent again.
- Failures that may pass (connection errors, timeouts, 408/425/429, 5xx) are retried with
  exponential backoff and jitter (`backoff_s`: base * 2^(n-1) + up to base of jitter, capped), up to
  `max_attempts`; permanent ones (other 4xx, bad config) mark the row `failed`. Delivery
  status, attempts and the last error are visible per row (`Repository.notifications`).
- One sender per database (the alerter's); rows for receivers that no longer exist fail
  with a clear error instead of blocking the queue.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import Callable, Mapping

from dcops.alerts.config import OutboxSettings
from dcops.alerts.notification.notifiers.base import DeliveryResult
from dcops.alerts.storage.alerter_store import AlerterStore

__all__ = ["OutboxSender", "backoff_s"]

log = logging.getLogger(__name__)
_NS = 1_000_000_000


def backoff_s(attempt: int, settings: OutboxSettings, rng: random.Random | None = None) -> float:
    """Delay before retry number `attempt` (1-based): base * 2^(attempt-1) plus up to `base` of jitter, capped
    at `backoff_max_s` (the rows wait in the database, so no retry library is involved)."""
    base, cap = settings.backoff_base_s, settings.backoff_max_s
    exp = min(max(1, attempt) - 1, 64)
    jitter = (rng or random).uniform(0, base)
    return min(cap, base * 2.0 ** exp + jitter)


class OutboxSender:
    def __init__(self, store: AlerterStore, notifiers: Mapping[str, object], settings: OutboxSettings,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.notifiers = dict(notifiers)  # receiver name -> notifier (has .send)
        self.settings = settings
        self.clock = clock
        self.sent = 0
        self.failed_attempts = 0
        self.outcomes: dict[tuple[str, str], int] = {}   # (notifier, delivered|retry|failed) -> count

    def deliver_due(self, limit: int = 50) -> int:
        """Try every due pending row once; returns how many were delivered."""
        now_ns = int(self.clock() * _NS)
        delivered = 0
        for note in self.store.due(now_ns, limit):
            notifier = self.notifiers.get(note.receiver)
            if notifier is None:
                res = DeliveryResult(False, retryable=False, error=f"receiver {note.receiver!r} is not configured")
            else:
                try:
                    res = notifier.send(dict(note.payload), note.idempotency_key)
                except Exception as exc:  # a notifier bug must not stop the queue
                    log.exception("notifier %s raised", note.notifier)
                    res = DeliveryResult(False, retryable=True, error=f"{type(exc).__name__}: {exc}"[:300])
            now_ns = int(self.clock() * _NS)
            attempt = note.attempts + 1
            outcome = "delivered" if res.ok else ("retry" if res.retryable and attempt < self.settings.max_attempts else "failed")
            key = (note.notifier, outcome)
            self.outcomes[key] = self.outcomes.get(key, 0) + 1
            if res.ok:
                delivered += 1
                self.sent += 1
                self.store.record_attempt(note.id, delivered=True, now_ns=now_ns)
                continue
            self.failed_attempts += 1
            give_up = not res.retryable or attempt >= self.settings.max_attempts
            nxt = now_ns + int(max(backoff_s(attempt, self.settings), res.retry_after_s) * _NS)  # honour Retry-After
            log.warning("notification %s to %s attempt %d failed: %s%s", note.idempotency_key, note.receiver, attempt,
                        res.error, " (giving up)" if give_up else "")
            self.store.record_attempt(note.id, delivered=False, now_ns=now_ns, error=res.error, next_attempt_ns=nxt,
                                      give_up=give_up)
        return delivered

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                n = self.deliver_due()
            except Exception:  # database briefly locked/unavailable: try again next round
                log.exception("outbox round failed")
                n = 0
            if n == 0:
                stop.wait(self.settings.poll_s)
