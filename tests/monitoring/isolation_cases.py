"""Tenant A's key never sees or changes tenant B's watched series, calendar, forecasts or breakdowns."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.isolation import IsolationCase


def _seed_series(b: Any) -> dict[str, Any]:
    from monitoring.models import WatchedSeries

    s = WatchedSeries.objects.create(metric="ctr", dimension="campaign", value="b-only-campaign")
    return {"id": s.pk, "markers": ["b-only-campaign"]}


def _seed_event(b: Any) -> dict[str, Any]:
    from monitoring.models import KnownEvent

    now = datetime.now(UTC)
    e = KnownEvent.objects.create(name="b-only-sale", start=now, end=now + timedelta(days=1))
    return {"id": e.pk, "markers": ["b-only-sale"]}


def _seed_buckets(b: Any) -> dict[str, Any]:
    from scoring.models import KpiBucket

    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    KpiBucket.objects.bulk_create([KpiBucket(granularity="hour", bucket_start=now - timedelta(hours=h), dimension=d,
                                             value=v, orders=987654, revenue=123456789)
                                   for h in range(1, 24 * 9) for d, v in (("total", ""), ("channel", "b-only-chan"))])
    return {"markers": ["b-only-chan", "987654", "123456789"]}


def _series_unchanged(b: Any, ctx: dict[str, Any]) -> None:
    from monitoring.models import WatchedSeries

    s = WatchedSeries.objects.get(pk=ctx["id"])
    assert s.enabled and s.value == "b-only-campaign"


def _event_unchanged(b: Any, ctx: dict[str, Any]) -> None:
    from monitoring.models import KnownEvent

    assert KnownEvent.objects.get(pk=ctx["id"]).name == "b-only-sale"


ISOLATION_CASES = [
    IsolationCase("list kpi series", "get", lambda ctx: "/api/v1/kpi-series", _seed_series),
    IsolationCase("get B's kpi series", "get", lambda ctx: f"/api/v1/kpi-series/{ctx['id']}", _seed_series,
                  allowed_status=(404,)),
    IsolationCase("patch B's kpi series", "patch", lambda ctx: f"/api/v1/kpi-series/{ctx['id']}", _seed_series,
                  body={"enabled": False}, allowed_status=(404,), verify_b=_series_unchanged),
    IsolationCase("delete B's kpi series", "delete", lambda ctx: f"/api/v1/kpi-series/{ctx['id']}", _seed_series,
                  allowed_status=(404,), verify_b=_series_unchanged),
    IsolationCase("list calendar", "get", lambda ctx: "/api/v1/calendar", _seed_event),
    IsolationCase("patch B's known event", "patch", lambda ctx: f"/api/v1/calendar/{ctx['id']}", _seed_event,
                  body={"name": "hijacked"}, allowed_status=(404,), verify_b=_event_unchanged),
    IsolationCase("delete B's known event", "delete", lambda ctx: f"/api/v1/calendar/{ctx['id']}", _seed_event,
                  allowed_status=(404,), verify_b=_event_unchanged),
    IsolationCase("forecast", "get", lambda ctx: "/api/v1/forecast?metric=orders&granularity=hour&horizon=3",
                  _seed_buckets),
    IsolationCase("explain", "get", lambda ctx: "/api/v1/explain?metric=revenue&compare=dod", _seed_buckets),
]
