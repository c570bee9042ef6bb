"""Batch hand-off: one task per committed batch runs the batch consumers (scoring, KPI rollups).

Each consumer's work commits together with its name in `consumers_done`, so a worker that dies
mid-batch is resumed by the sweeper without doing any consumer's work twice."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.module_loading import import_string

from .models import EventBatch
from .storage import batch_events_load, partitions_ensure

log = logging.getLogger(__name__)


def _try_lock(batch_id: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(hashtext(current_schema()), %s)", [batch_id % 2**31])
        return bool(cursor.fetchone()[0])


def _unlock(batch_id: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock(hashtext(current_schema()), %s)", [batch_id % 2**31])


def _group_more(first: EventBatch, max_events: int) -> list[EventBatch]:
    """Batches waiting behind `first` that one consumer run can take with it: pending, untouched, of
    the same kind (fraud-check batches are already scored, so they only group among themselves), up
    to `max_events` events in all, oldest first; each is locked here (one held elsewhere is skipped).
    Under a backlog the groups grow, so a busy worker pays its per-run costs (transactions, pandas,
    Redis and Celery round trips) once per group instead of once per small batch."""
    room = max_events - first.accepted
    if room <= 0:
        return []
    same_kind = Q(source="fraud_check") if first.source == "fraud_check" else ~Q(source="fraud_check")
    candidates = (EventBatch.objects.filter(same_kind, status=EventBatch.Status.PENDING, consumers_done=[],
                                            accepted__gt=0, accepted__lte=room)
                  .exclude(pk=first.pk).order_by("pk").only("pk", "accepted", "source")[:200])
    group: list[EventBatch] = []
    for batch in candidates:
        if batch.accepted > room:
            continue
        if _try_lock(batch.pk):
            group.append(batch)
            room -= batch.accepted
            if room <= 0:
                break
    return group


def batch_run(batch_id: int) -> str:
    """Run the pending consumers of a batch (and of the batches waiting behind it, see `_group_more`).
    Returns the batch's final status."""
    if not _try_lock(batch_id):
        return "locked"  # another worker has it
    ids = [batch_id]
    try:
        batch = EventBatch.objects.filter(pk=batch_id).first()
        if batch is None or batch.status == EventBatch.Status.DONE:
            return batch.status if batch else "missing"
        done = list(batch.consumers_done)
        if not done:
            more = _group_more(batch, settings.PULSE_BATCH_GROUP_MAX_EVENTS)
            ids += [b.pk for b in more]
        batches = EventBatch.objects.filter(pk__in=ids)
        batches.update(status=EventBatch.Status.PROCESSING, started_at=timezone.now(), attempts=F("attempts") + 1)
        events = None
        for path in settings.PULSE_BATCH_CONSUMERS:
            if path in done:
                continue
            if events is None:
                events = batch_events_load(batch_id) if len(ids) == 1 else _events_of(ids)
            with transaction.atomic():
                import_string(path)(batch=batch, events=events)
                done.append(path)
                batches.update(consumers_done=done)
        batches.update(status=EventBatch.Status.DONE, processed_at=timezone.now(), last_error="")
        return EventBatch.Status.DONE
    except Exception as exc:
        for pk, batch_attempts in EventBatch.objects.filter(pk__in=ids).values_list("pk", "attempts"):
            status = (EventBatch.Status.FAILED if batch_attempts >= settings.PULSE_BATCH_MAX_ATTEMPTS
                      else EventBatch.Status.PENDING)
            EventBatch.objects.filter(pk=pk).update(status=status, last_error=f"{type(exc).__name__}: {exc}"[:2000])
        log.exception("batch %s (with %d others) failed", batch_id, len(ids) - 1)
        return EventBatch.objects.filter(pk=batch_id).values_list("status", flat=True).first() or "missing"
    finally:
        for pk in ids:
            _unlock(pk)


def _events_of(batch_ids: list[int]) -> list[dict]:
    """The events of several batches in one stream order (occurred_at, then id), as one batch's are."""
    events = [e for pk in batch_ids for e in batch_events_load(pk)]
    events.sort(key=lambda e: (e["occurred_at"], e["id"]))
    return events


@shared_task(name="ingestion.batch_process")
def batch_process(batch_id: int) -> str:
    return batch_run(batch_id)


@shared_task(name="ingestion.batches_sweep")
def batches_sweep() -> int:
    """Hand over again batches left pending or processing too long (a worker died or Redis lost the task)."""
    cutoff = timezone.now() - timedelta(seconds=settings.PULSE_BATCH_SWEEP_AFTER_SECONDS)
    stale = EventBatch.objects.filter(
        Q(status=EventBatch.Status.PENDING, created_at__lt=cutoff)
        | Q(status=EventBatch.Status.PROCESSING, started_at__lt=cutoff),
        attempts__lt=settings.PULSE_BATCH_MAX_ATTEMPTS,
    ).values_list("pk", flat=True)[:1000]
    ids = list(stale)
    for batch_id in ids:
        batch_process.delay(batch_id)
    return len(ids)


@shared_task(name="ingestion.partitions_ahead")
def partitions_ahead() -> None:
    """Keep this month's and the next two months' partitions ready."""
    today = timezone.now()
    months = {((today.year * 12 + today.month - 1 + k) // 12, (today.month - 1 + k) % 12 + 1) for k in range(3)}
    partitions_ensure(months)


@shared_task(name="ingestion.upload_process")
def upload_process(upload_id: int) -> str:
    """Ingest an upload for one time slice; the rest goes to a new task so no task hits the time limit."""
    from .uploads import slice_seconds, upload_run

    status = upload_run(upload_id, time_budget=slice_seconds())
    if status == "continue":
        upload_process.delay(upload_id)
    return status


@shared_task(name="ingestion.uploads_sweep")
def uploads_sweep() -> int:
    """Hand over again uploads a dead worker left behind; they resume from rows_done."""
    from .uploads import uploads_stale

    ids = uploads_stale(older_than_seconds=getattr(settings, "PULSE_UPLOAD_SWEEP_AFTER_SECONDS", 300))
    for upload_id in ids:
        upload_process.delay(upload_id)
    return len(ids)


@shared_task(name="ingestion.usage_flush")
def usage_flush() -> dict[str, int]:
    """Move this tenant's Redis usage counters into tenants.UsageCounter (exactly once)."""
    from .selectors import current_tenant
    from .usage import usage_flush as flush

    return flush(tenant=current_tenant())


@shared_task(name="ingestion.imports_poll")
def imports_poll() -> int:
    """Poll this tenant's due import sources; each new file becomes an Upload."""
    from .imports import import_sources_poll

    return import_sources_poll()
