"""Kafka entry point: a consumer loop over an abstract message source, feeding `events_ingest`.

Delivery is at-least-once and storage is exactly-once:
- offsets are committed only after the poll batch is stored (the COPY transaction committed), so a
  crash before the commit redelivers the batch;
- a redelivered message is a duplicate, not a copy: events keep their `event_id`, and events without
  one get `k:<topic>:<partition>:<offset>`, which is the same on every delivery.
- a message that is not JSON, empty (tombstone) or not an event object is quarantined with its reason
  (reference `kafka:<topic>:<partition>`, index = offset) and its offset committed like any other:
  a poison message never stops or crashes the loop.

The loop does not know Kafka: `ConfluentSource` adapts confluent-kafka, tests drive `consume_loop`
with an in-process source. Plan limits are not enforced here (there is nobody to answer 429 to);
they apply to the HTTP entry points.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic_core import from_json

from .schemas import NON_FIELD_ERRORS, RawError
from .services import events_ingest

log = logging.getLogger(__name__)

RAW_EXCERPT_CHARS = 2000


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    partition: int
    offset: int
    value: bytes | None


class MessageSource(Protocol):
    def poll_batch(self, max_messages: int, timeout: float) -> list[Message]:
        """Up to `max_messages` messages, waiting at most `timeout` seconds for the first."""

    def commit(self, messages: Sequence[Message]) -> None:
        """Mark `messages` (and everything before them in their partitions) as processed."""

    def close(self) -> None: ...


@dataclass
class LoopStats:
    polls: int = 0
    messages: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    per_partition: dict[tuple[str, int], int] = field(default_factory=dict)


def decode(message: Message) -> Any:
    """The raw event of a message, or a RawError (quarantined with this reason) when it has none."""
    where = f"{message.topic}[{message.partition}]@{message.offset}"
    if not message.value:
        return RawError({NON_FIELD_ERRORS: [f"Message {where} is empty (tombstone)."]}, raw="")
    try:
        return from_json(message.value, allow_inf_nan=False)
    except (ValueError, RecursionError) as exc:
        return RawError({NON_FIELD_ERRORS: [f"Message {where} is not valid JSON: {exc}"]},
                        raw=message.value[:RAW_EXCERPT_CHARS].decode("utf-8", "replace"))


def ingest_messages(*, tenant: Any, messages: Sequence[Message], stats: LoopStats | None = None) -> LoopStats:
    """Store one poll batch: one `events_ingest` per (topic, partition) so quarantined messages keep
    their exact place (reference = topic and partition, index = offset)."""
    stats = stats or LoopStats()
    groups: dict[tuple[str, int], list[Message]] = {}
    for message in messages:
        groups.setdefault((message.topic, message.partition), []).append(message)
    for (topic, partition), group in groups.items():
        offsets = [m.offset for m in group]
        prefix = f"k:{topic[:80]}:{partition}:"
        result = events_ingest(
            tenant=tenant, raw_events=[decode(m) for m in group], source="kafka",
            reference=f"kafka:{topic}:{partition}"[:64], index_map=offsets,
            event_id_factory=lambda index, offsets=offsets, prefix=prefix: f"{prefix}{offsets[index]}")
        stats.accepted += result.accepted
        stats.duplicates += result.duplicates
        stats.rejected += len(result.rejected)
        stats.per_partition[(topic, partition)] = max(offsets)
    stats.messages += len(messages)
    return stats


def consume_loop(
    source: MessageSource,
    *,
    tenant: Any,
    batch_size: int = 1000,
    poll_timeout: float = 1.0,
    max_polls: int | None = None,
    max_messages: int | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    before_batch: Callable[[], None] | None = None,
) -> LoopStats:
    """Poll, store, commit, until `should_stop()` (or the optional bounds, for tests and benchmarks).

    A storage failure (database down) propagates without committing: the process exits, and the
    messages are redelivered when it restarts."""
    stats = LoopStats()
    last_report = time.monotonic()
    while not should_stop():
        if max_polls is not None and stats.polls >= max_polls:
            break
        if max_messages is not None and stats.messages >= max_messages:
            break
        messages = source.poll_batch(batch_size, poll_timeout)
        stats.polls += 1
        if not messages:
            continue
        if before_batch is not None:
            before_batch()
        ingest_messages(tenant=tenant, messages=messages, stats=stats)
        source.commit(messages)  # only now: the batch is stored
        if time.monotonic() - last_report > 60:
            log.info("kafka: %d messages, %d accepted, %d duplicates, %d quarantined", stats.messages,
                     stats.accepted, stats.duplicates, stats.rejected)
            last_report = time.monotonic()
    return stats


class ConfluentSource:
    """MessageSource over confluent-kafka, with auto-commit off (offsets are committed by the loop)."""

    def __init__(self, *, bootstrap: str, group: str, topics: Sequence[str],
                 config: dict[str, Any] | None = None) -> None:
        from confluent_kafka import Consumer

        self._consumer = Consumer({
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            **(config or {}),
        })
        self._consumer.subscribe(list(topics))

    def poll_batch(self, max_messages: int, timeout: float) -> list[Message]:
        from confluent_kafka import KafkaError, KafkaException

        batch = []
        for raw in self._consumer.consume(num_messages=max_messages, timeout=timeout):
            error = raw.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                if error.fatal():
                    raise KafkaException(error)
                log.warning("kafka: %s", error)  # transient broker/partition errors: librdkafka retries
                continue
            batch.append(Message(raw.topic(), raw.partition(), raw.offset(), raw.value()))
        return batch

    def commit(self, messages: Sequence[Message]) -> None:
        from confluent_kafka import TopicPartition

        last: dict[tuple[str, int], int] = {}
        for m in messages:
            last[(m.topic, m.partition)] = max(last.get((m.topic, m.partition), -1), m.offset)
        # The committed offset is the next one to read.
        self._consumer.commit(offsets=[TopicPartition(t, p, o + 1) for (t, p), o in last.items()],
                              asynchronous=False)

    def close(self) -> None:
        self._consumer.close()
