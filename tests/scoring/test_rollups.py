"""KPI rollups against direct SQL aggregates of the stored events, in the tenant's time zone."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection

from ingestion.services import events_ingest
from ingestion.tasks import batch_run
from scoring.models import KpiBucket, StockLevel

CHANNELS = ["email", "social", "organic"]


def _random_events(n: int, seed: int) -> list[dict[str, object]]:
    rng = random.Random(seed)
    start = datetime(2026, 3, 6, tzinfo=UTC)  # spans the US DST change of 2026-03-08
    events: list[dict[str, object]] = []
    for i in range(n):
        kind = rng.choice(["order", "click", "click", "impression", "return", "payment"])
        ts = start + timedelta(seconds=rng.randrange(4 * 86400))
        event: dict[str, object] = {"event_id": f"r{seed}-{i}", "type": kind, "timestamp": ts.isoformat(),
                                    "channel": rng.choice(CHANNELS), "campaign": f"c{rng.randrange(3)}"}
        if kind in ("order", "return", "payment"):
            event["amount"] = f"{rng.uniform(1, 300):.2f}"
            event["order_id"] = f"o{i}"
        if kind == "order":
            event["quantity"] = rng.randrange(1, 4)
        if kind == "impression":
            event["quantity"] = rng.randrange(1, 50)
        if kind == "payment":
            event["status"] = rng.choice(["succeeded", "succeeded", "failed"])
        events.append(event)
    return events


def _ingest_and_roll(tenant, events) -> None:  # type: ignore[no-untyped-def]
    for start in range(0, len(events), 700):  # several batches: increments must add up
        result = events_ingest(tenant=tenant, raw_events=events[start:start + 700], source="api")
        assert not result.rejected
        assert batch_run(result.batch_id) == "done"


def test_day_buckets_equal_a_direct_sql_aggregate_in_tenant_time(tenant_b) -> None:  # type: ignore[no-untyped-def]
    connection.set_tenant(tenant_b.tenant)  # America/Los_Angeles
    _ingest_and_roll(tenant_b.tenant, _random_events(3000, seed=1))
    with connection.cursor() as cursor:
        cursor.execute("""
            SELECT (date_trunc('day', occurred_at AT TIME ZONE 'America/Los_Angeles')) AT TIME ZONE 'America/Los_Angeles',
                   channel, sum(amount), count(*), sum(quantity)
            FROM events WHERE type = 'order' GROUP BY 1, 2""")
        expected = {(day, channel): (revenue, orders, units) for day, channel, revenue, orders, units in cursor.fetchall()}
        cursor.execute("""SELECT date_trunc('hour', occurred_at), count(*) FILTER (WHERE type = 'click'),
                                 sum(quantity) FILTER (WHERE type = 'impression'),
                                 count(*) FILTER (WHERE type = 'payment' AND status = 'failed')
                          FROM events GROUP BY 1""")
        hourly = {hour: (clicks, impressions or 0, failed) for hour, clicks, impressions, failed in cursor.fetchall()}
    got = {(b.bucket_start, b.value): (b.revenue, b.orders, b.units)
           for b in KpiBucket.objects.filter(granularity="day", dimension="channel") if b.orders}
    assert got == expected
    # Local midnight in Los Angeles is 08:00 UTC before the DST change and 07:00 UTC after it.
    starts = sorted({start for start, _ in got})
    assert [s.hour for s in starts][:3] == [8, 8, 8] and starts[-1].hour == 7
    for bucket in KpiBucket.objects.filter(granularity="hour", dimension="total"):
        clicks, impressions, failed = hourly[bucket.bucket_start]
        assert (bucket.sessions, bucket.impressions, bucket.payments_failed) == (clicks, impressions, failed)


def test_metrics_api_reads_rollups_and_raw_fallback_agrees(tenant_a) -> None:  # type: ignore[no-untyped-def]
    _ingest_and_roll(tenant_a.tenant, _random_events(1500, seed=2))
    client = tenant_a.client("read")
    base = "/api/v1/metrics?metric=aov&granularity=day&from=2026-03-06&to=2026-03-10"
    by_channel = client.get(f"{base}&group_by=channel").json()
    assert by_channel["source"] == "rollup" and len(by_channel["series"]) == 3
    email_rollup = client.get(f"{base}&channel=email").json()
    # group_by one dimension and filter on another: answered from the raw events
    email_by_campaign = client.get(f"{base}&channel=email&group_by=campaign").json()
    assert email_by_campaign["source"] == "events"
    revenue = sum(p["numerator"] for s in email_by_campaign["series"] for p in s["points"])
    assert revenue == pytest.approx(sum(p["numerator"] for p in email_rollup["series"][0]["points"]))
    point = email_rollup["series"][0]["points"][0]
    assert point["value"] == pytest.approx(point["numerator"] / point["denominator"])


@pytest.mark.parametrize("query, field", [("metric=nope", "metric"), ("metric=revenue&granularity=week", "granularity"),
                                          ("metric=revenue&group_by=color", "group_by"),
                                          ("metric=revenue&from=2026-03-09&to=2026-03-01", "from")])
def test_metrics_api_bad_parameters_are_400(tenant_a, query: str, field: str) -> None:  # type: ignore[no-untyped-def]
    response = tenant_a.client("read").get(f"/api/v1/metrics?{query}")
    assert response.status_code == 400 and field in response.json()["errors"]


def test_client_metrics_keep_their_cadence_and_aggregation(tenant_a) -> None:  # type: ignore[no-untyped-def]
    tenant = tenant_a.tenant
    tenant.config = {"kpi": {"metric_aggregation": {"cpc": "mean", "spend": "sum"}}}
    tenant.save(update_fields=["config"])
    events = []
    for i in range(12):  # every 30 minutes, two campaigns
        ts = (datetime(2026, 5, 1, tzinfo=UTC) + timedelta(minutes=30 * i)).isoformat()
        for campaign, cpc in (("a", 0.5 + i / 100), ("b", 1.0)):
            events.append({"event_id": f"m{i}{campaign}", "type": "metric", "metric": "cpc", "value": cpc,
                           "timestamp": ts, "campaign": campaign})
        events.append({"event_id": f"s{i}", "type": "metric", "metric": "spend", "value": 10, "timestamp": ts})
    _ingest_and_roll(tenant, events)
    client = tenant_a.client("read")
    native = client.get("/api/v1/metrics?metric=cpc&campaign=a&from=2026-05-01&to=2026-05-02").json()
    assert len(native["series"][0]["points"]) == 12  # the client's 30-minute cadence
    hourly = client.get("/api/v1/metrics?metric=cpc&group_by=campaign&granularity=hour&from=2026-05-01&to=2026-05-02").json()
    b = next(s for s in hourly["series"] if s["key"] == {"campaign": "b"})
    assert [p["value"] for p in b["points"]] == [1.0] * 6  # averaged, never summed
    spend = client.get("/api/v1/metrics?metric=spend&granularity=hour&from=2026-05-01&to=2026-05-02").json()
    assert [p["value"] for p in spend["series"][0]["points"]] == [20.0] * 6


def test_stock_level_keeps_the_latest_by_data_time(tenant_a) -> None:  # type: ignore[no-untyped-def]
    events = [{"event_id": "st2", "type": "stock", "product_id": "sku1", "stock_level": 5, "threshold": 10,
               "timestamp": "2026-05-01T12:00:00Z"},
              {"event_id": "st1", "type": "stock", "product_id": "sku1", "stock_level": 50,
               "timestamp": "2026-05-01T11:00:00Z"}]
    _ingest_and_roll(tenant_a.tenant, events[:1])
    _ingest_and_roll(tenant_a.tenant, events[1:])  # late, older event
    level = StockLevel.objects.get(product_id="sku1")
    assert (level.level, level.threshold) == (5, 10)


def test_amounts_in_other_currencies_are_converted_or_refused(tenant_a) -> None:  # type: ignore[no-untyped-def]
    tenant = tenant_a.tenant
    tenant.config = {"scoring": {"fx_rates": {"EUR": 1.1}}}
    tenant.save(update_fields=["config"])
    body = [{"event_id": "fx1", "type": "order", "order_id": "1", "amount": "100", "currency": "EUR",
             "timestamp": "2026-06-01T10:00:00Z"},
            {"event_id": "fx2", "type": "order", "order_id": "2", "amount": "100", "currency": "JPY",
             "timestamp": "2026-06-01T10:00:00Z"}]
    result = events_ingest(tenant=tenant, raw_events=body, source="api")
    assert result.accepted == 1 and "exchange rate" in result.rejected[0]["errors"]["currency"][0]
    batch_run(result.batch_id)
    day = KpiBucket.objects.get(granularity="day", dimension="total", bucket_start=datetime(2026, 6, 1, tzinfo=UTC))
    assert day.revenue == Decimal("110.0000")


def test_product_figures_come_from_the_order_lines(tenant_a) -> None:  # type: ignore[no-untyped-def]
    """An order that lists its items credits each product with its own lines (revenue, units, one
    order each); the order itself counts once in the total and the channel. Without items, the
    order's product_id gets the whole order, as before."""
    connection.set_tenant(tenant_a.tenant)
    at = datetime(2026, 3, 2, 10, 15, tzinfo=UTC)
    basket = {"event_id": "lines-1", "type": "order", "timestamp": at.isoformat(), "amount": "130.00",
              "quantity": 4, "order_id": "o-lines-1", "channel": "email", "product_id": "sku-a",
              "attributes": {"items": [{"product_id": "sku-a", "quantity": 1, "unit_price": "100.00"},
                                       {"product_id": "sku-b", "quantity": 2, "unit_price": "10.00"},
                                       {"product_id": "sku-b", "quantity": 1, "unit_price": "10.00"}]}}
    plain = {"event_id": "lines-2", "type": "order", "timestamp": (at + timedelta(minutes=5)).isoformat(),
             "amount": "40.00", "quantity": 2, "order_id": "o-lines-2", "channel": "email", "product_id": "sku-b"}
    _ingest_and_roll(tenant_a.tenant, [basket, plain])
    hour = datetime(2026, 3, 2, 10, tzinfo=UTC)

    def bucket(dimension: str, value: str) -> tuple[Decimal, int, int]:
        b = KpiBucket.objects.get(granularity="hour", dimension=dimension, value=value, bucket_start=hour)
        return b.revenue, b.orders, b.units

    assert bucket("product", "sku-a") == (Decimal("100"), 1, 1)
    assert bucket("product", "sku-b") == (Decimal("70"), 2, 5)  # 3 x 10 from the basket + the plain order
    assert bucket("total", "") == (Decimal("170"), 2, 6)
    assert bucket("channel", "email") == (Decimal("170"), 2, 6)
    # The metrics API counts the same way whether it reads the rollups or the raw events.
    client = tenant_a.client("read")
    base = "/api/v1/metrics?metric=revenue&granularity=hour&from=2026-03-02T00:00:00Z&to=2026-03-03T00:00:00Z"
    rolled = client.get(f"{base}&group_by=product").json()
    raw = client.get(f"{base}&group_by=channel&product=sku-b").json()
    assert rolled["source"] == "rollup" and raw["source"] == "events"
    by_product = {s["key"]["product"]: s["points"][0]["value"] for s in rolled["series"]}
    assert by_product == {"sku-a": 100.0, "sku-b": 70.0}
    assert [(s["key"], s["points"][0]["value"]) for s in raw["series"]] == [({"channel": "email"}, 70.0)]
    units = client.get(base.replace("metric=revenue", "metric=avg_unit_price") + "&store=none&group_by=product").json()
    assert units["source"] == "events" and units["series"] == []  # no event of that store
    price = client.get(base.replace("metric=revenue", "metric=avg_unit_price") + "&group_by=channel&product=sku-b").json()
    assert price["series"][0]["points"][0]["value"] == pytest.approx(14.0)  # 70 over 5 units
