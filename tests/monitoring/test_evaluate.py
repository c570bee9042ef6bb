"""Evaluation of closed buckets: backfill == streaming, one anomaly per incident, noise control,
root cause, late data, time zones."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from monitoring.models import KnownEvent, MonitorState, SeriesState
from monitoring.services import kpi_evaluate, late_data_note
from scoring.models import Anomaly, KpiBucket
from tests.monitoring.helpers import T0, anomaly_set, hourly_orders, no_defaults, put_hours, watch

DAYS = 9
DROP = (24 * 8 + 10, 24 * 8 + 13)  # three hours at 5 % of normal on the last day


def _seed(drop: tuple[int, int] | None = DROP) -> tuple[np.ndarray, np.ndarray]:
    """(total, email): the email channel (2/3 of orders) collapses during `drop`, the rest is normal."""
    email = hourly_orders(24 * DAYS, seed=2, level=30, drop=drop, drop_to=0.0)
    web = hourly_orders(24 * DAYS, seed=3, level=15)
    return email + web, email


def _evaluate_at(tenant, hour: int) -> dict[str, int]:  # type: ignore[no-untyped-def]
    return kpi_evaluate(tenant=tenant, now=T0 + timedelta(hours=hour, minutes=3))


def test_backfill_gives_the_same_anomalies_as_streaming(tenant_a) -> None:  # type: ignore[no-untyped-def]
    no_defaults()
    watch("orders")
    watch("revenue", dimension="channel", direction="down")
    watch("conversion_rate", detectors=["ratio_binomial"])
    total, email = _seed()
    n = len(total)
    # backfill: everything at once, evaluated once
    put_hours(total)
    put_hours(email, dimension="channel", value="email")
    _evaluate_at(tenant_a.tenant, n)
    backfill = anomaly_set()
    assert backfill, "the three-hour collapse must be found"
    Anomaly.objects.all().delete()
    SeriesState.objects.all().delete()
    KpiBucket.objects.all().delete()
    # streaming: the same buckets arrive one hour at a time, each evaluated when it closes
    prefix = 24 * 7
    put_hours(total, last=prefix)
    put_hours(email, dimension="channel", value="email", last=prefix)
    _evaluate_at(tenant_a.tenant, prefix)
    for hour in range(prefix, n):
        put_hours(total, first=hour, last=hour + 1)
        put_hours(email, dimension="channel", value="email", first=hour, last=hour + 1)
        assert _evaluate_at(tenant_a.tenant, hour + 1)["buckets"] == 3
    streamed = anomaly_set()
    by_key = {x[:3]: x for x in backfill}
    for x in streamed:
        assert x == by_key.get(x[:3]), [(i, a, b) for i, (a, b) in enumerate(zip(x, by_key.get(x[:3], x), strict=True)) if a != b]
    assert streamed == backfill


def test_one_anomaly_per_incident_with_data_time_and_root_cause(tenant_a) -> None:  # type: ignore[no-untyped-def]
    no_defaults()
    watch("orders")
    total, email = _seed()
    put_hours(total)
    put_hours(email, dimension="channel", value="email")
    put_hours(total - email, dimension="channel", value="web")
    counts = _evaluate_at(tenant_a.tenant, len(total))
    assert counts["buckets"] == len(total)
    drops = list(Anomaly.objects.filter(kind="kpi", metric="orders", direction="down"))
    assert len(drops) == 1
    a = drops[0]
    assert a.occurred_at == T0 + timedelta(hours=DROP[0])
    assert a.impact["buckets"] == 3 and a.impact["ongoing"] is False
    assert a.observed < a.expected and a.reasons and "seasonal_z" in a.detectors
    # the email channel, which went to zero, is named first
    assert a.root_cause[0]["dimension"] == "channel" and a.root_cause[0]["value"] == "email"
    assert a.root_cause[0]["share_of_delta"] > 0.3


def test_revenue_impact_is_money_below_expected(tenant_a) -> None:  # type: ignore[no-untyped-def]
    no_defaults()
    watch("revenue", direction="down")
    total, _ = _seed()
    put_hours(total, aov=50.0)
    _evaluate_at(tenant_a.tenant, len(total))
    a = Anomaly.objects.get(kind="kpi", metric="revenue")
    assert a.impact["currency"] == "USD"
    assert a.impact["revenue_at_risk"] == pytest.approx(a.impact["expected_total"] - a.impact["observed_total"], abs=0.01)
    assert a.impact["revenue_at_risk"] > 1000


@pytest.mark.parametrize("settings_, expected", [
    ({"direction": "up"}, 0),  # drops only are reported for 'down'; 'up' hides the collapse
    ({"min_duration": 4}, 0),  # three anomalous hours are not four
    ({"min_duration": 3}, 1),
    ({"min_relative_change": 0.99}, 0),
])
def test_noise_control(tenant_a, settings_, expected) -> None:  # type: ignore[no-untyped-def]
    no_defaults()
    watch("orders", **settings_)
    total, _ = _seed()
    put_hours(total)
    _evaluate_at(tenant_a.tenant, len(total))
    drops = Anomaly.objects.filter(kind="kpi", direction="down")
    assert drops.count() == expected
    if expected and settings_.get("min_duration") == 3:
        # reported when the run reaches its minimum duration, dated at the run's first bucket
        a = drops.get()
        assert a.occurred_at == T0 + timedelta(hours=DROP[0])
        assert a.impact["detected_bucket"] == (T0 + timedelta(hours=DROP[0] + 2)).isoformat()


def test_min_duration_works_across_evaluation_runs(tenant_a) -> None:  # type: ignore[no-untyped-def]
    no_defaults()
    watch("orders", min_duration=2)
    total, _ = _seed()
    put_hours(total, last=DROP[0] + 1)
    _evaluate_at(tenant_a.tenant, DROP[0] + 1)  # first anomalous hour only: not yet an incident
    assert not Anomaly.objects.filter(direction="down").exists()
    assert SeriesState.objects.get().run_length == 1
    put_hours(total, first=DROP[0] + 1)
    _evaluate_at(tenant_a.tenant, len(total))
    a = Anomaly.objects.get(direction="down")
    assert a.occurred_at == T0 + timedelta(hours=DROP[0]) and a.impact["buckets"] == 3


@pytest.mark.parametrize("action", ["mute", "mark"])
def test_known_event_calendar(tenant_a, action) -> None:  # type: ignore[no-untyped-def]
    no_defaults()
    watch("orders")
    KnownEvent.objects.create(name="planned maintenance", start=T0 + timedelta(hours=DROP[0] - 1),
                              end=T0 + timedelta(hours=DROP[1]), action=action, metrics=["orders"])
    total, _ = _seed()
    put_hours(total)
    _evaluate_at(tenant_a.tenant, len(total))
    drops = Anomaly.objects.filter(kind="kpi", direction="down")
    if action == "mute":
        assert not drops.exists()
    else:
        a = drops.get()
        assert a.impact["events"] == ["planned maintenance"]
        assert any(r["detector"] == "calendar" for r in a.reasons)


def test_calendar_scope_other_metric_is_not_muted(tenant_a) -> None:  # type: ignore[no-untyped-def]
    no_defaults()
    watch("orders")
    KnownEvent.objects.create(name="sale", start=T0, end=T0 + timedelta(days=30), action="mute", metrics=["revenue"])
    total, _ = _seed()
    put_hours(total)
    _evaluate_at(tenant_a.tenant, len(total))
    assert Anomaly.objects.filter(kind="kpi", direction="down").count() == 1


def test_late_data_rewinds_and_never_duplicates(tenant_a) -> None:  # type: ignore[no-untyped-def]
    no_defaults()
    watch("orders")
    total, _ = _seed()
    put_hours(total)
    _evaluate_at(tenant_a.tenant, len(total))
    before = anomaly_set()
    # a late batch for an hour before the evaluated frontier asks for a re-walk from its time
    late = T0 + timedelta(hours=24 * 7 + 5)
    late_data_note(events=[{"type": "order", "occurred_at": late}])
    assert MonitorState.objects.get().rewind_to == late
    counts = _evaluate_at(tenant_a.tenant, len(total))
    assert counts["buckets"] == len(total) - (24 * 7 + 5)
    assert MonitorState.objects.get().rewind_to is None
    assert anomaly_set() == before  # same data: same incidents, updated in place, none raised twice


def test_nothing_to_do_until_the_next_bucket_closes(tenant_a) -> None:  # type: ignore[no-untyped-def]
    no_defaults()
    watch("orders")
    total, _ = _seed(drop=None)
    put_hours(total)
    assert _evaluate_at(tenant_a.tenant, len(total))["buckets"] == len(total)
    assert kpi_evaluate(tenant=tenant_a.tenant, now=T0 + timedelta(hours=len(total), minutes=50))["buckets"] == 0
    # the next hour closes (empty: no orders at all is a zero bucket, not a missing one)
    assert _evaluate_at(tenant_a.tenant, len(total) + 1)["buckets"] == 1
    assert MonitorState.objects.get().buckets_evaluated == len(total) + 1


def test_a_product_sold_far_below_its_usual_price_is_found(tenant_a) -> None:  # type: ignore[no-untyped-def]
    """Default watch `avg_unit_price` per product (revenue over units from the order lines): a
    mispriced product is found in its first hour, a product at its usual price is not."""
    from monitoring.services import DEFAULT_WATCH

    assert ("avg_unit_price", "product", "hour", "down", 1) in DEFAULT_WATCH
    no_defaults()
    watch("avg_unit_price", dimension="product", direction="down")
    rng = np.random.default_rng(7)
    hours = 24 * 28
    rows = []
    for product, price in (("sku-dear", 174.99), ("sku-cheap", 9.99)):
        units = rng.poisson(3, hours) + 1
        for i in range(hours):
            unit_price = price * (0.1 if product == "sku-dear" and i >= hours - 3 else 1.0)
            rows.append(KpiBucket(granularity="hour", bucket_start=T0 + timedelta(hours=i), dimension="product",
                                  value=product, orders=int(units[i]), units=int(units[i]),
                                  revenue=round(float(units[i]) * unit_price, 2)))
    KpiBucket.objects.bulk_create(rows)
    _evaluate_at(tenant_a.tenant, hours)
    found = list(Anomaly.objects.filter(kind="kpi", metric="avg_unit_price"))
    assert [(a.dimensions.get("product"), a.direction) for a in found] == [("sku-dear", "down")]
    assert found[0].occurred_at == T0 + timedelta(hours=hours - 3)
    assert found[0].observed == pytest.approx(17.5, abs=0.01) and found[0].expected == pytest.approx(174.99, abs=0.5)
