"""The bus over Apache Kafka (kafka-python): the production implementation of `dcops.bus.Bus`.

This is the only module that imports kafka-python; it turns its options and errors into ours.

Delivery semantics (kept here, next to the code):
- producer: `acks="all"`, batching (`linger_ms`) and compression; messages are keyed by rack,
  so one rack's data stays ordered in one partition (`max_in_flight_requests_per_connection=1`
  keeps retries in order). The partition of a key is kafka-python's default (murmur2, as the
  Java client), so `partition_for(rack, partitions)` says offline which partition, hence which
  member of a consumer group, owns a rack; N ingest (or analytics) workers in one group each
  own the racks of their partitions (docs/deploy.md, "Beyond one node"). The idempotent producer is off: a restarted broker has never heard
  of the old producer id and would fence it, and the store's writes are idempotent anyway, so a
  retried duplicate is harmless;
- write-ahead: `publish` first appends the message to the on-disk spool (`dcops.spool`; its fsync
  policy is documented there: every append reaches the OS before `publish` returns, the disk at
  least once a second), and only then hands it to kafka-python. A record leaves the spool when
  the broker acknowledged it and every older record (the spool's cursor moves over the
  acknowledged prefix). So a collector killed at any moment (SIGKILL during a broker outage
  included) loses nothing it published: the next process with the same `client_id` replays
  what was not acknowledged, in order. Acknowledged records whose cursor move was lost in the
  crash are sent again (at-least-once; the store's writes are idempotent);
- while the broker is away (a send refused, or delivery failed after `delivery_timeout_s`) the bus
  stops handing messages to kafka-python and only appends them; a keeper thread replays the spool
  in order once the broker answers and returns to direct sending when the spool is empty. The
  spool is bounded; when it is full `publish` raises `SpoolFull`. `spool_depth` (written ahead,
  not yet acknowledged) is exported as a metric;
- topics (`<prefix>samples`, ...events, findings, alarms, deadletter) are created with the
  configured partitions before first use, and again by the keeper if a broker comes back empty;
- consumers: auto-commit off, `poll(max_records)`, and `commit()` commits exactly the offsets
  returned by the previous polls (after the caller processed them). A commit refused because the
  group rebalanced, or lost because the broker is away, is logged, not raised: those messages are
  delivered again (to the new owner). A topic whose id changes (a broker that came back empty,
  or a topic deleted and created again) is read again from its beginning, never from the old
  positions;
- a producer that starts while the broker is down spools until it answers.
"""

from __future__ import annotations

import fcntl
import logging
import threading
import time
from pathlib import Path
from typing import Sequence

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.partitioner.default import murmur2
from kafka.errors import CommitFailedError, KafkaError, TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata

from dcops import metrics as dcops_metrics
from dcops.bus import (TOPIC_ALARMS, TOPIC_DEADLETTER, TOPIC_EVENTS, TOPIC_FINDINGS, TOPIC_SAMPLES, Message,
                       publish_by_rack)
from dcops.settings import BusSettings
from dcops.spool import Spool, SpoolFull

__all__ = ["KafkaBus", "KafkaBusConsumer", "SpoolFull", "SpoolInUse", "TOPICS", "partition_for",
           "publish_by_rack"]  # publish_by_rack: re-export

log = logging.getLogger(__name__)

TOPICS = (TOPIC_SAMPLES, TOPIC_EVENTS, TOPIC_FINDINGS, TOPIC_ALARMS, TOPIC_DEADLETTER)


class SpoolInUse(RuntimeError):
    """Another live process holds this client id's spool."""


def _compression() -> str:
    try:
        import lz4.frame  # noqa: F401  (kafka-python needs it for lz4)

        return "lz4"
    except ImportError:  # pragma: no cover - lz4 is a dependency
        return "gzip"




def partition_for(key: str, partitions: int) -> int:
    """The partition the producer sends a key (a rack) to: kafka-python's default partitioner
    for a keyed message (murmur2 of the key's bytes, positive, modulo the partition count)."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


class KafkaBus:
    """Producer, spool and consumer factory for one process (`client_id` names its spool)."""

    def __init__(self, settings: BusSettings, client_id: str = "dcops", *, delivery_timeout_s: float = 30.0,
                 request_timeout_s: float = 10.0, max_block_s: float = 5.0, linger_ms: int = 20,
                 keeper_interval_s: float = 1.0, consumer_options: dict | None = None, metrics=None,
                 fsync_interval_s: float | None = 1.0) -> None:
        self.settings = settings
        self.client_id = client_id
        self.prefix = settings.topic_prefix
        self._common = self._security(settings)
        self._consumer_options = dict(consumer_options or {})
        spool_dir = Path(settings.spool_dir) / client_id
        spool_dir.mkdir(parents=True, exist_ok=True)
        self._lockfile = open(spool_dir / ".lock", "w")
        try:
            fcntl.flock(self._lockfile, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lockfile.close()
            raise SpoolInUse(f"spool {spool_dir} is in use by another process; give each producer its own"
                               " client_id") from None
        self.spool = Spool(spool_dir, max_bytes=settings.spool_max_bytes, fsync_interval_s=fsync_interval_s)
        self._lock = threading.Lock()  # publish order: append + send happen in one critical section
        self._ack_lock = threading.Lock()  # the acknowledged set and the spool's cursor
        self._acked: set[int] = set()
        self._direct = self.spool.depth == 0  # False: replaying a backlog (or the broker is away)
        self._stop = threading.Event()
        self.stats = {"sent": 0, "acked": 0, "failed": 0, "spooled": 0, "replayed": 0, "lost": 0}
        if self.spool.depth:
            log.warning("spool %s holds %d messages from a previous run; replaying them first",
                        spool_dir, self.spool.depth)
        self._topics_ok = False
        self._producer_config = dict(
            acks="all", compression_type=_compression(), linger_ms=linger_ms, batch_size=1 << 20,
            max_request_size=16 << 20, enable_idempotence=False,
            max_in_flight_requests_per_connection=1, retries=2**31 - 1,
            delivery_timeout_ms=int(delivery_timeout_s * 1000), request_timeout_ms=int(request_timeout_s * 1000),
            max_block_ms=int(max_block_s * 1000), allow_auto_create_topics=False, metadata_max_age_ms=10_000,
            reconnect_backoff_max_ms=2000, bootstrap_timeout_ms=int(max_block_s * 1000), client_id=client_id,
            **self._common)
        self._producer: KafkaProducer | None = None
        if self._connect():
            self._ensure_topics()
        self._keeper_interval = keeper_interval_s
        self._keeper = threading.Thread(target=self._keep, name=f"kafka-bus-keeper-{client_id}", daemon=True)
        self._keeper.start()
        self._unobserve = self._export(metrics if metrics is not None else dcops_metrics.current())

    def _export(self, m) -> list:
        """Producer outcomes and spool depth/bytes on /metrics; a /healthz check on the spool's room."""
        cid = self.client_id
        name = f"bus:{cid}"

        def health() -> dcops_metrics.Check:
            used, cap = self.spool.bytes, self.spool.max_bytes
            state = "broker reachable" if self._topics_ok else "broker unreachable"
            detail = f"{state}; {self.spool.depth} messages ({used} of {cap} bytes) spooled, {self.stats['lost']} lost"
            return dcops_metrics.Check(used < 0.9 * cap, detail)

        m.health.add(name, health)
        return [m.observe("bus_messages", lambda: {(cid, k): v for k, v in self.stats.items()}),
                m.observe("spool_depth", lambda: {(cid,): self.spool.depth}),
                m.observe("spool_bytes", lambda: {(cid,): self.spool.bytes}),
                lambda: m.health.remove(name)]

    @staticmethod
    def _security(s: BusSettings) -> dict:
        opts = {"bootstrap_servers": list(s.bootstrap_servers), "security_protocol": s.security_protocol}
        if s.sasl_mechanism:
            opts["sasl_mechanism"] = s.sasl_mechanism
            opts["sasl_plain_username"] = s.sasl_username
            opts["sasl_plain_password"] = s.sasl_password.get_secret_value() if s.sasl_password else None
        return opts

    def _connect(self) -> bool:
        """Create the producer; False (spool-only until the keeper succeeds) when the broker is away."""
        if self._producer is None:
            try:
                self._producer = KafkaProducer(**self._producer_config)
            except KafkaError as exc:
                log.warning("broker %s unreachable (%s); spooling to %s until it answers",
                            ",".join(self.settings.bootstrap_servers), exc, self.spool.path)
                return False
        return True

    def topic(self, name: str) -> str:
        return self.prefix + name

    @property
    def spool_depth(self) -> int:
        return self.spool.depth

    # ----- topics ---------------------------------------------------------------------------
    def _ensure_topics(self) -> bool:
        """Create missing topics with the configured partitions; False when the broker is away."""
        try:
            admin = KafkaAdminClient(client_id=f"{self.client_id}-admin", request_timeout_ms=5000,
                                     bootstrap_timeout_ms=5000, **self._common)
        except KafkaError as exc:
            log.debug("broker not reachable for topic check: %s", exc)
            return False
        try:
            existing = set(admin.list_topics())
            missing = [self.topic(t) for t in TOPICS if self.topic(t) not in existing]
            if missing:
                try:
                    admin.create_topics([NewTopic(t, self.settings.partitions, self.settings.replication_factor)
                                         for t in missing])
                    log.info("created topics %s with %d partitions", missing, self.settings.partitions)
                except TopicAlreadyExistsError:
                    pass
            self._topics_ok = True
            return True
        except KafkaError as exc:
            log.debug("topic check failed: %s", exc)
            return False
        finally:
            admin.close()

    # ----- producing ------------------------------------------------------------------------
    def publish(self, topic: str, key: str, value: bytes) -> None:
        """Write the message ahead to the spool, then send it (unless a backlog is being replayed).

        Raises `SpoolFull` when the spool has no room: the message was not accepted.
        """
        with self._lock:
            seq = self.spool.append(topic, key, value)
            self.stats["spooled"] += 1
            if self._producer is None:
                self._direct = False  # no broker yet: the keeper sends the spool once it answers
            if not self._direct:
                return  # behind the backlog: the keeper sends it in order
            try:
                fut = self._producer.send(self.topic(topic), key=key.encode(), value=bytes(value))
            except KafkaError as exc:  # buffer full or no metadata within max_block_s
                self._fall_back(exc)
                return
        self.stats["sent"] += 1
        fut.add_callback(lambda _meta, s=seq: self._on_ack(s))
        fut.add_errback(self._fall_back)

    def _on_ack(self, seq: int) -> None:
        self.stats["acked"] += 1
        self._acknowledge([seq])

    def _acknowledge(self, seqs) -> None:
        """Mark records acknowledged; move the spool's cursor over the acknowledged prefix."""
        with self._ack_lock:
            head = self.spool.head
            self._acked.update(s for s in seqs if s >= head)
            n = 0
            while head + n in self._acked:
                self._acked.discard(head + n)
                n += 1
            if n:
                self.spool.ack(n)

    def _fall_back(self, exc: Exception) -> None:
        """The broker did not take a message: stop direct sends; the keeper replays the spool."""
        self.stats["failed"] += 1
        if self._direct:
            log.warning("broker did not take a message (%s); keeping messages in %s until it returns", exc,
                        self.spool.path)
        self._direct = False
        self._topics_ok = False

    def _replay_once(self, chunk: int = 500) -> bool:
        """Send the spool's oldest records in order; True if the broker acknowledged any."""
        with self._ack_lock:
            head = self.spool.head
            records = self.spool.peek(chunk)
        if not records:
            return False
        futures = []
        try:
            for r in records:
                futures.append(self._producer.send(self.topic(r.topic), key=r.key.encode(), value=r.value))
            self._producer.flush(timeout=self._producer.config["delivery_timeout_ms"] / 1000)
        except KafkaError as exc:
            log.debug("spool replay interrupted: %s", exc)
        done = 0
        for f in futures:  # the prefix the broker acknowledged; the rest is sent again later
            if f.is_done and f.succeeded():
                done += 1
            else:
                break
        if done:
            self._acknowledge(range(head, head + done))
            self.stats["replayed"] += done
        return done > 0

    def _resume_direct(self) -> bool:
        """Back to direct sends once the backlog is gone (no publish can slip in between)."""
        with self._lock:
            if self.spool.depth == 0 and self._producer is not None:
                self._direct = True
                log.warning("spool replayed; producing directly again")
                return True
        return False

    def _keep(self) -> None:
        last_check = 0.0
        while not self._stop.is_set():
            try:
                now = time.monotonic()
                if not self._connect():
                    self._stop.wait(self._keeper_interval)
                    continue
                if self._stop.is_set():  # closed while connecting: the spool is no longer ours
                    break
                if not self._topics_ok or now - last_check > 10.0:
                    last_check = now
                    self._ensure_topics()
                if not self._direct and self._topics_ok and not self._stop.is_set():
                    if self._replay_once():
                        continue
                    self._resume_direct()
            except Exception:  # the keeper must survive anything; the spool keeps the data
                log.exception("kafka bus keeper error")
            self._stop.wait(self._keeper_interval)

    def flush(self, timeout_s: float | None = None) -> None:
        """Wait until everything published so far was acknowledged by the broker (spool included)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        if self._producer is not None:
            self._producer.flush(timeout=timeout_s)
        while self.spool.depth:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"{self.spool.depth} messages still spooled in {self.spool.path}"
                                   " (broker unreachable); they are kept on disk")
            time.sleep(0.05)

    # ----- consuming ------------------------------------------------------------------------
    def consumer(self, topics: str | Sequence[str], group: str, **options) -> "KafkaBusConsumer":
        if isinstance(topics, str):
            topics = (topics,)
        if not self._topics_ok:
            self._ensure_topics()
        opts = dict(group_id=group, enable_auto_commit=False, auto_offset_reset="earliest",
                    max_poll_interval_ms=60_000, session_timeout_ms=10_000, heartbeat_interval_ms=1000,
                    metadata_max_age_ms=5000, max_partition_fetch_bytes=16 << 20, fetch_max_bytes=64 << 20,
                    allow_auto_create_topics=False, reconnect_backoff_max_ms=2000, request_timeout_ms=30_000,
                    client_id=f"{self.client_id}-{group}")
        opts.update(self._consumer_options)
        opts.update(options)
        consumer = KafkaConsumer(**self._common, **opts)
        consumer.subscribe([self.topic(t) for t in topics])
        return KafkaBusConsumer(consumer, self.prefix)

    def close(self, timeout_s: float = 10.0) -> None:
        """Flush what the broker will take within `timeout_s`; the rest stays in the spool."""
        try:
            self.flush(timeout_s)
        except TimeoutError as exc:
            log.warning("closing with undelivered messages: %s", exc)
        self._stop.set()
        # the keeper may be inside a connection attempt (bootstrap timeout) or a replay chunk
        wait_s = (self._producer_config["bootstrap_timeout_ms"] + self._producer_config["delivery_timeout_ms"]) / 1000
        self._keeper.join(timeout=wait_s + 5)
        if self._keeper.is_alive():
            log.error("kafka bus keeper did not stop; the spool in %s may be replayed twice", self.spool.path)
        if self._producer is not None:
            self._producer.close(timeout=1)
        self.spool.close()
        for undo in self._unobserve:
            undo()
        fcntl.flock(self._lockfile, fcntl.LOCK_UN)
        self._lockfile.close()


class KafkaBusConsumer:
    """A consumer-group member; `commit()` commits what the previous polls returned."""

    def __init__(self, consumer: KafkaConsumer, prefix: str, commit_timeout_s: float = 10.0) -> None:
        self._c = consumer
        self._prefix = prefix
        self._pending: dict = {}
        self._topic_ids: dict = {}
        self._commit_timeout_ms = int(commit_timeout_s * 1000)
        self.failed_commits = 0

    def assignment(self) -> set[tuple[str, int]]:
        """{(topic, partition)} this group member holds now (empty before it joined)."""
        n = len(self._prefix)
        return {(tp.topic[n:], tp.partition) for tp in self._c.assignment()}

    def owned(self, topic: str, keys) -> list[str]:
        """Those of `keys` whose messages on `topic` come to this member now: the keys that
        `partition_for` puts on a partition it holds (none before it joined)."""
        held = {p for t, p in self.assignment() if t == topic}
        count = len(self._c.partitions_for_topic(self._prefix + topic) or ()) if held else 0
        return [k for k in keys if partition_for(k, count) in held] if count else []

    def lag(self) -> dict[tuple[str, int], int]:
        """{(topic, partition): messages not yet handed to the caller} for the partitions held now.

        The broker's high-water mark from the latest fetch minus this consumer's position (the
        next offset it hands out); call it from the polling thread. Partitions not fetched from
        yet are left out.
        """
        out = {}
        n = len(self._prefix)
        for tp in self._c.assignment():
            try:
                hw = self._c.highwater(tp)
                pos = self._c.position(tp, timeout_ms=200) if hw is not None else None
            except KafkaError:  # revoked meanwhile, or the broker is away: no figure this time
                continue
            if hw is not None and pos is not None:
                out[(tp.topic[n:], tp.partition)] = max(0, hw - pos)
        return out

    def _recreated_topics(self) -> set[str]:
        """Topics whose id changed since the last look (deleted and created again, or a new empty broker)."""
        cluster = self._c._client.cluster  # kafka-python keeps topic ids from metadata here
        changed = set()
        for topic in self._c.subscription() or ():
            tid = cluster.topic_id(topic)
            if tid is None:
                continue
            old = self._topic_ids.get(topic)
            if old is not None and old != tid:
                changed.add(topic)
            self._topic_ids[topic] = tid
        return changed

    def _restart_topics(self, topics: set[str]) -> None:
        log.warning("topics %s were recreated (broker replaced?); reading them again from the beginning",
                    sorted(topics))
        parts = [tp for tp in self._c.assignment() if tp.topic in topics]
        for tp in list(self._pending):
            if tp.topic in topics:
                del self._pending[tp]
        if parts:
            self._c.seek_to_beginning(*parts)

    def poll(self, timeout_s: float = 1.0, max_records: int = 100) -> list[Message]:
        recreated = self._recreated_topics()
        if recreated:
            self._restart_topics(recreated)
        records = self._c.poll(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        recreated = self._recreated_topics()
        if recreated:  # what this poll returned may come from the old positions: read it again
            self._restart_topics(recreated)
            records = {tp: msgs for tp, msgs in records.items() if tp.topic not in recreated}
        out: list[Message] = []
        n = len(self._prefix)
        for tp, msgs in records.items():
            for m in msgs:
                key = m.key.decode(errors="replace") if m.key is not None else ""
                out.append(Message(m.topic[n:], key, m.value, m.offset, m.partition))
            if msgs:
                self._pending[tp] = msgs[-1].offset + 1
        return out

    def commit(self) -> None:
        if not self._pending:
            return
        offsets = {tp: OffsetAndMetadata(off, "", -1) for tp, off in self._pending.items()}
        self._pending.clear()
        try:
            self._c.commit(offsets, timeout_ms=self._commit_timeout_ms)
        except CommitFailedError as exc:  # the group rebalanced: the new owner gets them again
            self.failed_commits += 1
            log.warning("commit refused after a rebalance (%s); those messages will be redelivered", exc)
        except KafkaError as exc:
            # Broker away. The offsets are dropped, not kept for later: committing them to a broker
            # that came back empty would skip its new log. Redelivery instead (harmless duplicates).
            self.failed_commits += 1
            log.warning("commit failed (%s); those messages may be redelivered", exc)

    def close(self) -> None:
        """Leave the group without committing anything not yet committed."""
        self._c.close(autocommit=False)
