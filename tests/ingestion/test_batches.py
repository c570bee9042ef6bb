"""The hand-off to scoring: outbox batches survive lost tasks and crashed consumers."""

from __future__ import annotations

from typing import Any

import pytest

from ingestion.models import EventBatch
from ingestion.services import events_ingest
from ingestion.tasks import batch_run, batches_sweep

CALLS: list[tuple[str, int, int]] = []
FAIL_ONCE: set[str] = set()


SEEN: list[list[str]] = []


def consumer_one(*, batch: Any, events: list[dict[str, Any]]) -> None:
    CALLS.append(("one", batch.pk, len(events)))
    SEEN.append([e["event_id"] for e in events])


def consumer_two(*, batch: Any, events: list[dict[str, Any]]) -> None:
    if "two" in FAIL_ONCE:
        FAIL_ONCE.discard("two")
        raise RuntimeError("worker died mid-batch")
    CALLS.append(("two", batch.pk, len(events)))


@pytest.fixture
def consumers(settings):  # type: ignore[no-untyped-def]
    CALLS.clear()
    SEEN.clear()
    FAIL_ONCE.clear()
    settings.PULSE_BATCH_CONSUMERS = [f"{__name__}.consumer_one", f"{__name__}.consumer_two"]
    settings.PULSE_BATCH_SWEEP_AFTER_SECONDS = 0
    return settings


def _events(n: int, prefix: str, minute: int = 0) -> list[dict[str, Any]]:
    return [{"event_id": f"{prefix}{i}", "type": "payment", "timestamp": f"2026-11-20T10:{(minute + i) % 60:02d}:00Z",
             "amount": "10", "customer_id": "c1"} for i in range(n)]


def test_consumers_get_all_events_of_the_batch(tenant_a, consumers) -> None:  # type: ignore[no-untyped-def]
    result = events_ingest(tenant=tenant_a.tenant, raw_events=_events(5, "a"), source="api")
    assert batch_run(result.batch_id) == "done"
    assert CALLS == [("one", result.batch_id, 5), ("two", result.batch_id, 5)]


def test_crash_mid_batch_resumes_without_repeating_finished_consumers(tenant_a, consumers) -> None:  # type: ignore[no-untyped-def]
    FAIL_ONCE.add("two")
    result = events_ingest(tenant=tenant_a.tenant, raw_events=_events(3, "b"), source="api")
    assert batch_run(result.batch_id) == "pending"
    batch = EventBatch.objects.get(pk=result.batch_id)
    assert batch.consumers_done == [f"{__name__}.consumer_one"] and "worker died" in batch.last_error

    assert batch_run(result.batch_id) == "done"
    assert [c[0] for c in CALLS] == ["one", "two"]  # "one" ran once in all


def test_lost_task_is_found_by_the_sweeper(tenant_a, consumers, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # The task message is lost (e.g. the broker died before a worker took it): nothing runs it...
    result = events_ingest(tenant=tenant_a.tenant, raw_events=_events(4, "c"), source="api")
    assert EventBatch.objects.get(pk=result.batch_id).status == "pending"
    # ...until the sweeper hands it over again.
    enqueued: list[int] = []
    monkeypatch.setattr("ingestion.tasks.batch_process.delay", lambda batch_id: enqueued.append(batch_id))
    assert batches_sweep() >= 1 and result.batch_id in enqueued
    for batch_id in enqueued:
        batch_run(batch_id)
    assert EventBatch.objects.get(pk=result.batch_id).status == "done"
    assert ("one", result.batch_id, 4) in CALLS


def test_a_batch_that_keeps_failing_is_marked_failed_after_max_attempts(tenant_a, consumers, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    consumers.PULSE_BATCH_MAX_ATTEMPTS = 2
    result = events_ingest(tenant=tenant_a.tenant, raw_events=_events(1, "d"), source="api")
    FAIL_ONCE.add("two")
    assert batch_run(result.batch_id) == "pending"
    FAIL_ONCE.add("two")
    assert batch_run(result.batch_id) == "failed"
    enqueued: list[int] = []
    monkeypatch.setattr("ingestion.tasks.batch_process.delay", lambda batch_id: enqueued.append(batch_id))
    batches_sweep()
    assert result.batch_id not in enqueued  # failed batches wait for a person, they are not retried forever


def test_duplicate_only_batch_needs_no_hand_off(tenant_a, consumers) -> None:  # type: ignore[no-untyped-def]
    events_ingest(tenant=tenant_a.tenant, raw_events=_events(2, "e"), source="api")
    again = events_ingest(tenant=tenant_a.tenant, raw_events=_events(2, "e"), source="api")
    assert again.accepted == 0 and again.duplicates == 2
    assert EventBatch.objects.get(pk=again.batch_id).status == "done"


def test_a_stored_batch_row_holds_its_counts_and_span(tenant_a, consumers) -> None:  # type: ignore[no-untyped-def]
    """The batch row is written by raw statements (ingestion.storage.batch_open / events_store):
    every column as the model defines it."""
    from django.utils import timezone

    events_ingest(tenant=tenant_a.tenant, raw_events=_events(1, "row"), source="api")
    before = timezone.now()
    raw = [*_events(3, "row"), {"type": "nope"}]
    result = events_ingest(tenant=tenant_a.tenant, raw_events=raw, source="upload")
    batch = EventBatch.objects.get(pk=result.batch_id)
    stored = sorted(e["occurred_at"] for e in result.events)
    assert (batch.source, batch.accepted, batch.duplicates, batch.rejected) == ("upload", 2, 1, 1)
    assert (batch.first_occurred_at, batch.last_occurred_at) == (stored[0], stored[-1])
    assert (batch.status, batch.consumers_done, batch.attempts, batch.last_error) == ("pending", [], 0, "")
    assert batch.started_at is None and batch.processed_at is None and before <= batch.created_at <= timezone.now()


def test_real_worker_processes_a_committed_batch(celery_worker_process, tenant_world, live_db) -> None:  # type: ignore[no-untyped-def]
    """End to end with a real worker: the on-commit hand-off reaches it and it marks the batch done."""
    import time

    from django.db import connection

    a = tenant_world["a"]
    connection.set_tenant(a.tenant)
    result = events_ingest(tenant=a.tenant, raw_events=_events(3, "live-"), source="api")
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if EventBatch.objects.get(pk=result.batch_id).status == "done":
                break
            time.sleep(0.2)
        assert EventBatch.objects.get(pk=result.batch_id).status == "done"
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM events WHERE batch_id = %s", [result.batch_id])
            cursor.execute("DELETE FROM ingestion_eventkey WHERE batch_id = %s", [result.batch_id])
            cursor.execute("DELETE FROM ingestion_eventbatch WHERE id = %s", [result.batch_id])


def test_batches_waiting_behind_are_consumed_with_it_in_stream_order(tenant_a, consumers) -> None:  # type: ignore[no-untyped-def]
    consumers.PULSE_BATCH_GROUP_MAX_EVENTS = 9
    first = events_ingest(tenant=tenant_a.tenant, raw_events=_events(3, "g1-", minute=20), source="api").batch_id
    second = events_ingest(tenant=tenant_a.tenant, raw_events=_events(3, "g2-", minute=10), source="upload").batch_id
    paid = events_ingest(tenant=tenant_a.tenant, raw_events=_events(1, "fc-"), source="fraud_check").batch_id
    third = events_ingest(tenant=tenant_a.tenant, raw_events=_events(3, "g3-", minute=30), source="api").batch_id
    too_big = events_ingest(tenant=tenant_a.tenant, raw_events=_events(4, "g4-", minute=40), source="api").batch_id

    assert batch_run(first) == "done"
    # One run for the first three ordinary batches (9 events, the cap); the fraud-check batch (already
    # scored) and the batch that would pass the cap wait for their own runs.
    assert CALLS == [("one", first, 9), ("two", first, 9)]
    assert SEEN[0] == [f"g2-{i}" for i in range(3)] + [f"g1-{i}" for i in range(3)] + [f"g3-{i}" for i in range(3)]
    status = dict(EventBatch.objects.filter(pk__in=[first, second, third, paid, too_big]).values_list("pk", "status"))
    assert status == {first: "done", second: "done", third: "done", paid: "pending", too_big: "pending"}
    assert EventBatch.objects.get(pk=third).consumers_done == consumers.PULSE_BATCH_CONSUMERS
    # Their own tasks, when they come, find nothing left to do.
    assert batch_run(second) == "done" and len(CALLS) == 2
    assert batch_run(paid) == "done" and CALLS[-1] == ("two", paid, 1)


def test_a_failed_group_leaves_every_batch_of_it_to_retry(tenant_a, consumers) -> None:  # type: ignore[no-untyped-def]
    FAIL_ONCE.add("two")
    first = events_ingest(tenant=tenant_a.tenant, raw_events=_events(2, "f1-"), source="api").batch_id
    second = events_ingest(tenant=tenant_a.tenant, raw_events=_events(2, "f2-", minute=5), source="api").batch_id
    assert batch_run(first) == "pending"
    for pk in (first, second):
        batch = EventBatch.objects.get(pk=pk)
        assert (batch.status, batch.consumers_done) == ("pending", [f"{__name__}.consumer_one"])
        assert "worker died" in batch.last_error
    # Resumed one by one (only untouched batches group): "one" never runs twice for an event.
    assert batch_run(first) == "done" and batch_run(second) == "done"
    assert [c[0] for c in CALLS] == ["one", "two", "two"]


def test_after_response_hand_offs_queued_together_share_one_task(settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Fraud-check batches a tenant stores within the coalescing window share one task (the newest
    id: the worker takes the ones waiting behind it along)."""
    import threading

    from ingestion import services
    from ingestion.tasks import batch_process
    from pulse.celery import SCHEMA_HEADER
    from pulse.lib.background import after_response

    settings.PULSE_DEFER_AFTER_RESPONSE = True
    settings.PULSE_HAND_OVER_COALESCE_SECONDS = 0.05
    sent: list[tuple[Any, Any]] = []
    monkeypatch.setattr(batch_process, "apply_async", lambda args=None, kwargs=None, **o: sent.append((args, o)))
    busy = threading.Event()
    after_response(busy.wait, 5)  # the background thread is busy with something else
    for batch_id in (11, 12, 13):
        services._hand_over_coalesced(batch_id, "t_one")
    services._hand_over_coalesced(7, "t_two")
    busy.set()

    def drained() -> None:
        import time

        time.sleep(0.3)  # past the window; then everything queued before this runs first
        done = after_response(lambda: None)
        assert done is not None
        done.result(timeout=5)

    drained()
    # One task per tenant (two timers: which of them fires first is up to the scheduler).
    assert len(sent) == 2 and ((13,), {"headers": {SCHEMA_HEADER: "t_one"}}) in sent
    assert ((7,), {"headers": {SCHEMA_HEADER: "t_two"}}) in sent
    # Nothing waiting any more: the next one is sent on its own.
    services._hand_over_coalesced(14, "t_one")
    drained()
    assert sent[-1] == ((14,), {"headers": {SCHEMA_HEADER: "t_one"}})


def test_stored_events_come_back_with_their_attributes_decoded(tenant_a) -> None:  # type: ignore[no-untyped-def]
    """Consumers read attributes (card fingerprints, order items) from stored events: a raw cursor
    returns jsonb as text, so the loader decodes it."""
    from ingestion.storage import batch_events_load

    event = {**_events(1, "attr-")[0], "attributes": {"card_fingerprint": "fp-1", "items": [{"sku": "a"}]}}
    result = events_ingest(tenant=tenant_a.tenant, raw_events=[event], source="api")
    (loaded,) = batch_events_load(result.batch_id)
    assert loaded["attributes"] == {"card_fingerprint": "fp-1", "items": [{"sku": "a"}]}


@pytest.mark.parametrize("count", [1, 5, 8, 9])
def test_a_few_stored_events_come_back_from_the_insert_as_a_reload_would_read_them(tenant_a, count) -> None:  # type: ignore[no-untyped-def]
    """Up to 8 events are written by one statement that also sets the batch's counts and returns the
    rows, and `before_commit` sees them (the fraud-check scores them without reading them back):
    equal to `batch_events_load`, in its order. More are COPYed, and must be read back (None). The
    batch row holds its counts either way."""
    from ingestion.storage import batch_events_load

    seen: list[Any] = []
    events = _events(count, f"ret{count}-")
    for i, event in enumerate(events):  # out of time order, with attributes
        event.update(amount=f"{10 + i}.5{i}", attributes={"i": i, "card_fingerprint": f"fp-{i}"},
                     timestamp=f"2026-11-{10 + (i * 7) % 3:02d}T1{i % 2}:00:00Z")  # ties
    result = events_ingest(tenant=tenant_a.tenant, raw_events=events, source="api",
                           before_commit=lambda batch: seen.append(batch.stored_rows))
    (returned,) = seen
    if count > 8:
        assert returned is None
    else:
        assert returned == batch_events_load(result.batch_id)
        assert len(returned) == count and all(isinstance(r["attributes"], dict) for r in returned)
    batch = EventBatch.objects.get(pk=result.batch_id)
    times = sorted(e["occurred_at"] for e in result.events)
    assert (batch.accepted, batch.duplicates, batch.status) == (count, 0, "pending")
    assert (batch.first_occurred_at, batch.last_occurred_at) == (times[0], times[-1])
