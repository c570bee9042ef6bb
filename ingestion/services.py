"""Writes of the ingestion layer. Every entry point (REST, upload, Kafka, import, fraud-check,
quarantine replay) goes through `events_ingest`: validate, claim event ids, COPY, quarantine the
rejects, and commit the batch together with its outbox row; scoring starts after commit."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from pulse.lib.background import after_response_gathered
from pulse.lib.metrics import EVENTS_ACCEPTED, EVENTS_REJECTED

from .models import EventBatch, Quarantine
from .schemas import NormalisedEvent, RawError, Rejection, validate_batch
from .storage import batch_open, events_store, months_of, partitions_ensure
from .usage import usage_add, usage_add_many, usage_key


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    batch_id: int | None = None
    # The stored events (normalised), for callers that score them synchronously (fraud-check).
    events: list[NormalisedEvent] = field(default_factory=list)
    # Index in raw_events -> event id, for every valid event (stored or duplicate).
    event_ids: dict[int, str] = field(default_factory=dict)

    def as_response(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "duplicates": self.duplicates, "rejected": self.rejected}


def _raw_for_quarantine(raw: Any) -> Any:
    if isinstance(raw, RawError):
        return {"_undecodable": raw.raw}
    try:
        json.dumps(raw)
        return raw
    except (TypeError, ValueError):
        return {"_unserialisable": repr(raw)[:4000]}


def events_ingest(
    *,
    tenant: Any,
    raw_events: Sequence[Any],
    source: str,
    reference: str = "",
    index_offset: int = 0,
    event_id_factory: Callable[[int], str] | None = None,
    now: datetime | None = None,
    index_map: Sequence[int] | None = None,
    before_commit: Callable[[EventBatch], None] | None = None,
    hand_over_after_response: bool = False,
) -> IngestResult:
    """Store the valid events of a batch exactly once and quarantine the invalid ones.

    `index_offset` shifts reported indexes (a file chunk reports row numbers); `index_map[i]`, when
    given, is the reported index of raw_events[i] instead (Kafka offsets, which may have gaps).
    `before_commit(batch)` runs inside the batch transaction, after the counts are set: callers that
    track progress (uploads) commit it atomically with the events; `batch.stored_rows` holds the
    stored rows when a few were written (no need to read them back). `hand_over_after_response` leaves
    the hand-off to the consumers for after the answer (pulse.lib.background; the sweep repairs a lost
    one): the fraud-check answers ~1.5 ms sooner. Must run in the tenant's schema and
    outside an open transaction (partitions are created in their own)."""
    now = now or timezone.now()
    checked = validate_batch(raw_events, tenant_tz=tenant.timezone, tenant_currency=tenant.currency, now=now,
                             event_id_factory=event_id_factory)
    _reject_unconvertible(checked, tenant)

    def position(index: int) -> int:
        return index_map[index] if index_map is not None else index + index_offset

    result = IngestResult(rejected=[{"index": position(r["index"]), "errors": r["errors"]}
                                    for r in checked.rejected])

    # The first occurrence of an id within the batch wins; later ones are duplicates.
    unique: dict[str, NormalisedEvent] = {}
    for _, event in checked.valid:
        unique.setdefault(event["event_id"], event)
    in_batch_duplicates = len(checked.valid) - len(unique)

    partitions_ensure(months_of(unique.values()))
    with transaction.atomic():
        # Raw statements for the batch row: the ORM's create and save cost ~1 ms of CPU per request
        # (a third of a fraud-check outside scoring).
        batch, fresh = batch_open(source=source, rejected=len(checked.rejected), event_ids=list(unique))
        stored = [event for event_id, event in unique.items() if event_id in fresh]
        stored.sort(key=lambda e: e["occurred_at"])
        batch.accepted = len(stored)
        batch.duplicates = len(unique) - len(stored) + in_batch_duplicates
        if stored:
            batch.first_occurred_at, batch.last_occurred_at = stored[0]["occurred_at"], stored[-1]["occurred_at"]
        else:
            batch.status, batch.processed_at = EventBatch.Status.DONE, now
        batch.stored_rows = events_store(batch=batch, events=stored)
        if checked.rejected:
            Quarantine.objects.bulk_create([
                Quarantine(source=source, reference=reference, index=position(r["index"]),
                           raw=_raw_for_quarantine(raw_events[r["index"]]), errors=r["errors"],
                           event_id=str(raw_events[r["index"]].get("event_id", ""))[:128]
                           if isinstance(raw_events[r["index"]], dict) else "")
                for r in checked.rejected
            ])
        if before_commit is not None:
            before_commit(batch)
        if stored:
            batch_id = batch.pk
            if hand_over_after_response:
                schema = connection.schema_name  # the background thread has no tenant of its own
                transaction.on_commit(lambda: _hand_over_coalesced(batch_id, schema))
            else:
                transaction.on_commit(lambda: _hand_over(batch_id))

    result.accepted, result.duplicates, result.batch_id, result.events = (
        batch.accepted, batch.duplicates, batch.pk, stored)
    result.event_ids = {index: event["event_id"] for index, event in checked.valid}
    _count_usage(tenant, accepted=batch.accepted, rejected=len(checked.rejected), now=now,
                 later=hand_over_after_response)
    return result


def _reject_unconvertible(checked: Any, tenant: Any) -> None:
    """Amounts are compared and summed in the tenant's currency: refuse currencies without a rate."""
    if not any(e["currency"] not in (None, tenant.currency) for _, e in checked.valid):
        return
    from scoring.config import fx_rates_for

    rates = fx_rates_for(tenant)
    keep = []
    for index, event in checked.valid:
        if event["currency"] is None or event["currency"] in rates:
            keep.append((index, event))
        else:
            checked.rejected.append({"index": index, "errors": {"currency": [
                f"No exchange rate from {event['currency']} to {tenant.currency} is configured for this tenant "
                f"(config scoring.fx_rates)."]}})
    checked.valid = keep
    checked.rejected.sort(key=lambda r: r["index"])


def _hand_over(batch_id: int, *, schema: str | None = None) -> None:
    from pulse.celery import SCHEMA_HEADER

    from .tasks import batch_process

    if schema is None:
        batch_process.delay(batch_id)  # enqueued in the current schema
    else:
        batch_process.apply_async((batch_id,), headers={SCHEMA_HEADER: schema})


def _hand_over_coalesced(batch_id: int, schema: str) -> None:
    """Hand-off after the response (the fraud-check's single-payment batches): the batches a tenant
    stores within PULSE_HAND_OVER_COALESCE_SECONDS share one task, which names the newest; the worker
    consumes the untouched batches waiting behind the one it is handed (`ingestion.tasks._group_more`),
    so the earlier ones go with it. One Celery message (~1.3 ms of CPU) per burst, not per payment;
    a hand-off lost with the process is swept again like any other."""
    after_response_gathered(_hand_over_newest, schema, batch_id)


def _hand_over_newest(schema: str, batch_ids: list[int]) -> None:
    _hand_over(max(batch_ids), schema=schema)


def _count_usage(tenant: Any, *, accepted: int, rejected: int, now: datetime, later: bool = False) -> None:
    """Usage counters; `later` sends the Redis part after the answer (the fraud-check)."""
    if accepted:
        EVENTS_ACCEPTED.labels(tenant.slug).inc(accepted)
        key = usage_key(tenant.pk, now.astimezone(UTC).date())
        if later:
            after_response_gathered(usage_add_many, None, (key, "events_accepted", accepted))
        else:
            usage_add(key, "events_accepted", accepted)
    if rejected:
        EVENTS_REJECTED.labels(tenant.slug).inc(rejected)


def quarantine_replay(*, tenant: Any, item: Quarantine, corrected: dict[str, Any] | None = None) -> IngestResult:
    """Validate a quarantined event again (after the data or the tenant's config was fixed)."""
    raw = corrected if corrected is not None else item.raw
    result = events_ingest(tenant=tenant, raw_events=[raw], source="replay", reference=f"quarantine:{item.pk}")
    if result.accepted or result.duplicates:
        # The replay itself must not leave a second quarantine row behind.
        Quarantine.objects.filter(pk=item.pk).update(status=Quarantine.Status.REPLAYED, replayed_at=timezone.now())
    else:
        Quarantine.objects.filter(reference=f"quarantine:{item.pk}", source="replay").delete()
        Quarantine.objects.filter(pk=item.pk).update(errors=result.rejected[0]["errors"] if result.rejected else {})
    return result

