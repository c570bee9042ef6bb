"""Low-level writes of the events table: monthly partitions and COPY. Called by services only."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from django.db import connection
from django.utils import timezone

from pulse.lib.db import SMALL_INSERT_ROWS, rows_insert, rows_write

from .models import EventBatch
from .schemas import COPY_COLUMNS, NormalisedEvent, copy_rows

EVENT_COPY_COLUMNS: tuple[str, ...] = ("batch_id", *COPY_COLUMNS)
_known_partitions: set[tuple[str, int, int]] = set()
_lock = threading.Lock()


def _month_bounds(year: int, month: int) -> tuple[datetime, datetime]:
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def partitions_ensure(months: Iterable[tuple[int, int]]) -> None:
    """Create the monthly partitions that hold `months` in the active tenant schema, if missing.

    Runs in its own short transaction before the batch transaction, so the DDL lock on the parent
    table is never held while a large COPY runs. Known partitions are cached per process."""
    schema = connection.schema_name
    missing = [(y, m) for (y, m) in set(months) if (schema, y, m) not in _known_partitions]
    if not missing:
        return
    with connection.cursor() as cursor:
        for year, month in sorted(missing):
            name = f"events_p{year:04d}_{month:02d}"
            cursor.execute("SELECT to_regclass(%s)", [name])
            if cursor.fetchone()[0] is None:
                start, end = _month_bounds(year, month)
                # Serialise creators of the same partition across processes.
                cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"{schema}.{name}"])
                cursor.execute(
                    f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF events FOR VALUES FROM (%s) TO (%s)",
                    [start, end],
                )
            with _lock:
                _known_partitions.add((schema, year, month))


def months_of(events: Iterable[NormalisedEvent]) -> set[tuple[int, int]]:
    return {(e["occurred_at"].year, e["occurred_at"].month) for e in events}


def events_store(*, batch: EventBatch, events: list[NormalisedEvent]) -> list[dict[str, Any]] | None:
    """Write a batch's events and its counts (`batch_counts_set`) inside the caller's transaction.

    Many events: COPY, then the counts; returns None (read them back with `batch_events_load`).
    A few: ONE statement that updates the counts and INSERTs the events, returning the stored rows
    exactly as `batch_events_load` would read them (a fraud-check makes one round trip here, not
    three)."""
    if len(events) > SMALL_INSERT_ROWS:
        with connection.cursor() as cursor:
            rows_write(cursor, "events", EVENT_COPY_COLUMNS, ((batch.pk, *row) for row in copy_rows(events)),
                       count=len(events))
        batch_counts_set(batch)
        return None
    if not events:
        batch_counts_set(batch)
        return []
    sql, params = _counts_update(batch)
    with connection.cursor() as cursor:
        # A data-modifying WITH runs once whether or not the INSERT refers to it.
        rows_insert(cursor, "events", EVENT_COPY_COLUMNS, [(batch.pk, *row) for row in copy_rows(events)],
                    returning=_LOADED_COLUMNS, prefix=(f"WITH counts AS ({sql})", params))
        stored = _event_dicts(cursor)
    stored.sort(key=lambda e: (e["occurred_at"], e["id"]))  # batch_events_load's order
    return stored


def batch_open(*, source: str, rejected: int, event_ids: list[str]) -> tuple[EventBatch, set[str]]:
    """Open a batch (status pending, counts to be set by `events_store`) and claim its event ids,
    in one statement. Returns the batch and the ids that were new (the rest were ingested before)."""
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            "WITH b AS (INSERT INTO ingestion_eventbatch (source, created_at, accepted, duplicates, rejected, status, "
            "consumers_done, attempts, last_error) VALUES (%s, %s, 0, 0, %s, %s, '[]', 0, '') RETURNING id), "
            "k AS (INSERT INTO ingestion_eventkey (event_id, batch_id) SELECT unnest(%s::varchar[]), b.id FROM b "
            "ON CONFLICT DO NOTHING RETURNING event_id) "
            "SELECT (SELECT id FROM b), ARRAY(SELECT event_id FROM k)",
            [source, now, rejected, EventBatch.Status.PENDING, event_ids],
        )
        batch_id, fresh = cursor.fetchone()
    batch = EventBatch(id=batch_id, source=source, created_at=now, rejected=rejected)
    batch._state.adding, batch._state.db = False, connection.alias
    return batch, set(fresh)


def batch_counts_set(batch: EventBatch) -> None:
    """Write the counts, occurrence span, status and processed_at set on `batch`."""
    with connection.cursor() as cursor:
        cursor.execute(*_counts_update(batch))


def _counts_update(batch: EventBatch) -> tuple[str, list[Any]]:
    return ("UPDATE ingestion_eventbatch SET accepted = %s, duplicates = %s, first_occurred_at = %s, "
            "last_occurred_at = %s, status = %s, processed_at = %s WHERE id = %s",
            [batch.accepted, batch.duplicates, batch.first_occurred_at, batch.last_occurred_at, batch.status,
             batch.processed_at, batch.pk])


def batch_events_load(batch_id: int) -> list[dict[str, Any]]:
    """Every event of a batch as dicts (columns of the events table), in occurred_at order;
    `attributes` decoded (see event_attributes)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(_LOADED_COLUMNS)} FROM events WHERE batch_id = %s ORDER BY occurred_at, id",
            [batch_id],
        )
        return _event_dicts(cursor)


_LOADED_COLUMNS: tuple[str, ...] = ("id", *COPY_COLUMNS)


def _event_dicts(cursor: Any) -> list[dict[str, Any]]:
    """The fetched event rows as dicts, `attributes` decoded."""
    names = [col.name for col in cursor.description]
    events = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    for event in events:
        if event["attributes"] is not None:
            event["attributes"] = event_attributes(event)
    return events


def event_attributes(event: Mapping[str, Any]) -> dict[str, Any] | None:
    """An event's attributes as a dict. Rows read through a raw cursor carry the jsonb as text
    (Django's psycopg backend leaves JSON undecoded for JSONField to decode), validated ones a dict."""
    value = event.get("attributes")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, dict) else None
