"""The Kafka consumer loop, driven by an in-process message source (and a real broker when one is set)."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Sequence
from typing import Any

import pytest

from ingestion.kafka import ConfluentSource, Message, consume_loop
from ingestion.models import Event, Quarantine


class FakeBroker:
    """One topic with partitions; remembers committed offsets per consumer group (one group here)."""

    def __init__(self, topic: str, partitions: dict[int, list[bytes | None]]) -> None:
        self.topic = topic
        self.log = {p: [Message(topic, p, offset, value) for offset, value in enumerate(values)]
                    for p, values in partitions.items()}
        self.committed = dict.fromkeys(partitions, 0)


class FakeSource:
    """A consumer that restarts from the committed offsets, like a new Kafka consumer in the group."""

    def __init__(self, broker: FakeBroker, *, crash_on_commit: bool = False) -> None:
        self.broker = broker
        self.position = dict(broker.committed)
        self.crash_on_commit = crash_on_commit

    def poll_batch(self, max_messages: int, timeout: float) -> list[Message]:
        batch: list[Message] = []
        for partition, messages in self.broker.log.items():
            take = messages[self.position[partition]:self.position[partition] + max_messages - len(batch)]
            batch += take
            self.position[partition] += len(take)
        return batch

    def commit(self, messages: Sequence[Message]) -> None:
        if self.crash_on_commit:
            raise RuntimeError("consumer killed before commit")
        for m in messages:
            self.broker.committed[m.partition] = max(self.broker.committed[m.partition], m.offset + 1)

    def close(self) -> None:
        pass


def _event(i: int, **extra: Any) -> bytes:
    return json.dumps({"type": "click", "timestamp": f"2026-11-20T10:{i:02d}:00Z", "channel": "ads", **extra}).encode()


def test_poison_messages_are_quarantined_and_the_loop_goes_on(tenant_a) -> None:  # type: ignore[no-untyped-def]
    broker = FakeBroker("clicks", {
        0: [_event(0, event_id="k0"), b"\xff{not json", _event(1), None],
        1: [b"[1, 2]", _event(2, event_id="k2"), json.dumps({"type": "click"}).encode()],
    })
    stats = consume_loop(FakeSource(broker), tenant=tenant_a.tenant, batch_size=10, max_polls=3)
    assert (stats.messages, stats.accepted, stats.rejected) == (7, 3, 4)
    assert broker.committed == {0: 4, 1: 3}
    assert sorted(Event.objects.values_list("event_id", flat=True)) == ["k0", "k2", "k:clicks:0:2"]
    quarantined = {(q.reference, q.index): q for q in Quarantine.objects.filter(source="kafka")}
    assert sorted(quarantined) == [("kafka:clicks:0", 1), ("kafka:clicks:0", 3), ("kafka:clicks:1", 0),
                                   ("kafka:clicks:1", 2)]
    assert "not valid JSON" in json.dumps(quarantined[("kafka:clicks:0", 1)].errors)
    assert "empty" in json.dumps(quarantined[("kafka:clicks:0", 3)].errors)
    assert "timestamp" in quarantined[("kafka:clicks:1", 2)].errors


def test_crash_before_commit_redelivers_as_duplicates_and_loses_nothing(tenant_a) -> None:  # type: ignore[no-untyped-def]
    broker = FakeBroker("orders", {0: [_event(i) for i in range(5)] + [_event(5, event_id="own-id")]})
    with pytest.raises(RuntimeError):
        consume_loop(FakeSource(broker, crash_on_commit=True), tenant=tenant_a.tenant, batch_size=4, max_polls=5)
    assert broker.committed == {0: 0} and Event.objects.count() == 4  # stored, not committed

    stats = consume_loop(FakeSource(broker), tenant=tenant_a.tenant, batch_size=4, max_polls=5)
    assert (stats.messages, stats.accepted, stats.duplicates) == (6, 2, 4)
    assert broker.committed == {0: 6}
    assert Event.objects.count() == 6 and Event.objects.filter(event_id="own-id").exists()


def test_offsets_are_not_committed_when_storing_fails(tenant_a, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    broker = FakeBroker("t", {0: [_event(0)]})

    def database_down(**kwargs: Any) -> Any:
        raise ConnectionError("database is down")

    monkeypatch.setattr("ingestion.kafka.events_ingest", database_down)
    with pytest.raises(ConnectionError):
        consume_loop(FakeSource(broker), tenant=tenant_a.tenant, max_polls=1)
    assert broker.committed == {0: 0}


@pytest.mark.kafka
@pytest.mark.skipif(not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"), reason="needs KAFKA_BOOTSTRAP_SERVERS")
def test_real_broker_round_trip(tenant_a) -> None:  # type: ignore[no-untyped-def]
    from confluent_kafka import Producer

    bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    topic = f"pulse-test-{uuid.uuid4().hex[:8]}"
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(5):
        producer.produce(topic, _event(i, event_id=f"{topic}-{i}"))
    producer.produce(topic, b"poison")
    producer.flush(10)
    source = ConfluentSource(bootstrap=bootstrap, group=f"{topic}-g", topics=[topic])
    deadline = time.monotonic() + 30
    try:
        stats = consume_loop(source, tenant=tenant_a.tenant, batch_size=100, poll_timeout=1.0, max_messages=6,
                             should_stop=lambda: time.monotonic() > deadline)
    finally:
        source.close()
    assert (stats.accepted, stats.rejected) == (5, 1)
    assert Event.objects.filter(event_id__startswith=topic).count() == 5
