"""Usage counters: API calls and accepted events per day in Redis, flushed exactly once to PostgreSQL;
plan limits answer 429."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.http import HttpResponse
from django.test import RequestFactory

from ingestion.services import events_ingest
from ingestion.usage import (
    UsageMiddleware,
    api_call_count,
    usage_add_many,
    usage_flush,
    usage_flush_day,
    usage_key,
    usage_today,
)
from tenants.models import UsageCounter

EVENT = {"type": "click", "timestamp": "2026-11-20T10:00:00Z"}


@pytest.fixture(autouse=True)
def clean_counters(redis_client):  # type: ignore[no-untyped-def]
    """Counters set here (a used-up quota) must not leak into other tests of the session."""
    yield
    redis_client.flushdb()


def _counter(tenant) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    row = UsageCounter.objects.filter(tenant=tenant, day=datetime.now(UTC).date()).first()
    return (row.events_accepted, row.api_calls) if row else (0, 0)


def test_events_and_api_calls_are_counted(tenant_a, redis_client) -> None:  # type: ignore[no-untyped-def]
    client = tenant_a.client("ingest")
    client.post("/api/v1/events", [EVENT, EVENT], format="json")
    client.post("/api/v1/events", {"type": "nope"}, format="json")  # a call, no accepted event
    assert usage_today(tenant_a.tenant.pk) == {"events_accepted": 2, "api_calls": 2}


def test_middleware_and_view_count_a_request_once(tenant_a, redis_client) -> None:  # type: ignore[no-untyped-def]
    request = RequestFactory().get("/api/v1/anomalies")
    request.tenant = tenant_a.tenant

    def view(req):  # type: ignore[no-untyped-def]
        api_call_count(req)  # a view that counts itself
        return HttpResponse()

    UsageMiddleware(view)(request)
    UsageMiddleware(lambda req: HttpResponse())(RequestFactory().get("/admin/"))  # not an API call
    assert usage_today(tenant_a.tenant.pk)["api_calls"] == 1


def test_counts_sent_after_the_answer_are_summed_into_one_pipeline(tenant_a, redis_client, settings) -> None:  # type: ignore[no-untyped-def]
    """Production defers the counting (pulse.lib.background): a burst of calls and fraud-checks lands
    as one summed update per counter."""
    from pulse.lib import background

    settings.PULSE_DEFER_AFTER_RESPONSE = True
    settings.PULSE_HAND_OVER_COALESCE_SECONDS = 0.05
    for _ in range(3):
        UsageMiddleware(lambda req: HttpResponse())(_api_request(tenant_a))
    key = usage_key(tenant_a.tenant.pk, datetime.now(UTC).date())
    background.after_response_gathered(usage_add_many, None, (key, "events_accepted", 4))
    import time

    time.sleep(0.3)
    done = background.after_response(lambda: None)
    assert done is not None
    done.result(timeout=5)
    assert usage_today(tenant_a.tenant.pk) == {"events_accepted": 4, "api_calls": 3}
    assert redis_client.ttl(key) > 0


def _api_request(tenant_handle):  # type: ignore[no-untyped-def]
    request = RequestFactory().get("/api/v1/anomalies")
    request.tenant = tenant_handle.tenant
    return request


def test_flush_moves_counts_exactly_once(tenant_a, redis_client) -> None:  # type: ignore[no-untyped-def]
    tenant = tenant_a.tenant
    events_ingest(tenant=tenant, raw_events=[EVENT] * 3, source="api")
    assert usage_flush(tenant=tenant)["events_accepted"] == 3
    assert _counter(tenant)[0] == 3
    assert usage_flush(tenant=tenant) == {"events_accepted": 0, "api_calls": 0}  # nothing new
    assert usage_today(tenant.pk)["events_accepted"] == 3  # the total stays readable for plan limits

    # Crash after the database commit: the retry must not add the same delta again.
    events_ingest(tenant=tenant, raw_events=[EVENT] * 2, source="api")
    day = datetime.now(UTC).date()
    with pytest.raises(RuntimeError):
        usage_flush_day(tenant.pk, day, crash_after_commit=True)
    assert _counter(tenant)[0] == 5
    events_ingest(tenant=tenant, raw_events=[EVENT], source="api")  # arrives meanwhile
    usage_flush(tenant=tenant)
    assert _counter(tenant)[0] == 6 and usage_today(tenant.pk)["events_accepted"] == 6


def test_crash_before_the_database_commit_loses_nothing(tenant_a, redis_client, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    tenant = tenant_a.tenant
    events_ingest(tenant=tenant, raw_events=[EVENT] * 4, source="api")

    def db_down(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise ConnectionError("database down")

    monkeypatch.setattr("ingestion.usage._apply", db_down)
    with pytest.raises(ConnectionError):
        usage_flush(tenant=tenant)
    monkeypatch.undo()
    usage_flush(tenant=tenant)
    assert _counter(tenant)[0] == 4


def test_daily_event_limit_answers_429(tenant_a, redis_client) -> None:  # type: ignore[no-untyped-def]
    limit = tenant_a.tenant.plan.events_per_day
    assert limit > 0
    key = usage_key(tenant_a.tenant.pk, datetime.now(UTC).date())
    redis_client.hset(key, "flushed:events_accepted", limit - 1)
    client = tenant_a.client("ingest")
    assert client.post("/api/v1/events", [EVENT] * 3, format="json").status_code == 200  # soft limit
    refused = client.post("/api/v1/events", EVENT, format="json")
    assert refused.status_code == 429
    body = refused.json()
    assert body["error"] == "quota_exceeded" and "events per day" in body["detail"]
    assert client.post("/api/v1/uploads?filename=a.csv", b"type\nclick\n", content_type="text/csv").status_code == 429


def test_unlimited_plan_is_never_refused(tenant_a, redis_client, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr("ingestion.usage._plan_limits", lambda tenant: (0, 0))
    redis_client.hset(usage_key(tenant_a.tenant.pk, datetime.now(UTC).date()), "events_accepted", 10**12)
    assert tenant_a.client("ingest").post("/api/v1/events", EVENT, format="json").status_code == 200
