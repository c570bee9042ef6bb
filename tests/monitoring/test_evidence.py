"""Evidence pooled over consecutive buckets (drops a small series cannot show in one bucket) and one
anomaly per incident within one evaluation walk."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

import numpy as np

from monitoring.engine import pooled_z
from monitoring.models import SeriesState
from monitoring.services import kpi_evaluate
from scoring.models import Anomaly, KpiBucket
from tests.monitoring.helpers import T0, anomaly_set, hourly_orders, no_defaults, put_hours, watch

DAYS = 9
SMALL = 4.0  # orders/hour at the daily mean: 1.6 at night, 6.4 at the afternoon peak
RUN = (24 * 8 + 12, 24 * 8 + 16)  # four afternoon hours at zero on the last day
ONE = (24 * 8 + 14, 24 * 8 + 15)  # one afternoon hour at zero


def _evaluate_at(tenant, hour: int) -> dict[str, int]:  # type: ignore[no-untyped-def]
    return kpi_evaluate(tenant=tenant, now=T0 + timedelta(hours=hour, minutes=3))


def _small(drop: tuple[int, int] | None) -> np.ndarray:
    return hourly_orders(24 * DAYS, seed=11, level=SMALL, drop=drop, drop_to=0.0)


def test_pooled_z_counts_proportions_and_clipped_gauges() -> None:
    # 0 orders in two hours where 6 + 6 were expected: a Poisson deviance of sqrt(2 x 12) = 4.9
    z = pooled_z(np.array([[0.0, 12.0, 12.0, 0, 0], [0.0, 12.0, 24.0, 0, 0]]), np.array([1, 1]))
    assert np.allclose(z, [-np.sqrt(24.0), -np.sqrt(12.0)])  # the second series is twice as dispersed
    # 9 clicks in 1,800 impressions against a 6 % baseline of 60 / 1,000: decisive, deflated by phi
    z = pooled_z(np.array([[9.0, 1800.0, 60.0, 1000.0, 1800.0], [9.0, 1800.0, 60.0, 1000.0, 3600.0]]),
                 np.array([2, 2]))
    assert z[0] < -8 and np.isclose(z[1], z[0] / np.sqrt(2.0))
    # gauges: Stouffer of clipped z over 2 buckets
    assert np.isclose(pooled_z(np.array([[-8.0, 2.0, 0, 0, 0]]), np.array([0]))[0], -8.0 / np.sqrt(2.0))


def test_a_run_of_low_buckets_is_found_where_no_single_bucket_is(tenant_a) -> None:  # type: ignore[no-untyped-def]
    no_defaults()
    watch("orders")
    put_hours(_small(RUN))
    _evaluate_at(tenant_a.tenant, 24 * DAYS)
    drops = list(Anomaly.objects.filter(kind="kpi", direction="down"))
    assert len(drops) == 1, [(a.occurred_at, a.impact) for a in drops]
    a = drops[0]
    # dated at the run's first bucket, found on the pooled statistic (no bucket alone reaches z = 4)
    assert RUN[0] <= (a.occurred_at - T0) / timedelta(hours=1) <= RUN[0] + 1
    assert any("consecutive buckets" in r["text"] for r in a.reasons), a.reasons


def test_one_low_bucket_of_a_small_series_is_not_an_alarm(tenant_a) -> None:  # type: ignore[no-untyped-def]
    no_defaults()
    watch("orders")
    put_hours(_small(ONE))
    _evaluate_at(tenant_a.tenant, 24 * DAYS)
    assert not Anomaly.objects.filter(kind="kpi", direction="down").exists()


def test_pooled_evidence_backfill_equals_streaming(tenant_a) -> None:  # type: ignore[no-untyped-def]
    no_defaults()
    watch("orders")
    values = _small(RUN)
    n = len(values)
    put_hours(values)
    _evaluate_at(tenant_a.tenant, n)
    backfill = anomaly_set()
    assert backfill
    Anomaly.objects.all().delete()
    SeriesState.objects.all().delete()
    KpiBucket.objects.all().delete()
    prefix = RUN[0] - 1
    put_hours(values, last=prefix)
    _evaluate_at(tenant_a.tenant, prefix)
    for hour in range(prefix, n):  # the evidence run is carried between evaluations in SeriesState
        put_hours(values, first=hour, last=hour + 1)
        _evaluate_at(tenant_a.tenant, hour + 1)
    assert anomaly_set() == backfill


def test_several_incidents_of_one_series_in_one_walk_are_distinct(tenant_a) -> None:  # type: ignore[no-untyped-def]
    """Regression: incidents finished in one walk were dated by series, so every incident of a series got
    the last one's first bucket and the same anomaly was raised several times."""
    no_defaults()
    watch("orders")
    values = hourly_orders(24 * DAYS, seed=2, level=40)
    for start in (24 * 7 + 10, 24 * 7 + 20, 24 * 8 + 11):  # three separate two-hour collapses
        values[start:start + 2] = 0
    put_hours(values)
    _evaluate_at(tenant_a.tenant, 24 * DAYS)
    drops = Anomaly.objects.filter(kind="kpi", direction="down")
    keys = Counter((a.metric, tuple(sorted(a.dimensions.items())), a.occurred_at, a.direction) for a in drops)
    assert keys and max(keys.values()) == 1, keys
    assert sorted((a.occurred_at - T0) / timedelta(hours=1) for a in drops) == [24 * 7 + 10, 24 * 7 + 20, 24 * 8 + 11]
    assert all(a.fingerprint.endswith("@hour") for a in drops)


def _minute_shop(silence: tuple[int, int] | None) -> datetime:
    """Three weeks of hour rollups at 6 orders/hour (and the minute series' first bucket), then 14 hours
    of minute rollups at 0.1/minute; returns the end. `silence`: [start, end) minutes of the last 14 h at 0."""
    rng = np.random.default_rng(1)  # its longest natural gap between orders: 47 minutes
    hours = 24 * 21 + 14
    put_hours(np.full(hours, 6))
    end = T0 + timedelta(hours=hours)
    minutes = rng.poisson(0.1, 14 * 60)
    if silence:
        minutes[silence[0]:silence[1]] = 0
    start = end - timedelta(hours=14)
    rows = [KpiBucket(granularity="minute", bucket_start=T0, dimension="total", value="", orders=1)]
    rows += [KpiBucket(granularity="minute", bucket_start=start + timedelta(minutes=i), dimension="total", value="",
                       orders=int(n)) for i, n in enumerate(minutes) if n > 0]
    KpiBucket.objects.bulk_create(rows)
    # evaluated up to 11 hours before the end: the walk covers the last 11 hours
    SeriesState.objects.create(metric="orders", dimension="total", value="", granularity="minute",
                               last_bucket=end - timedelta(hours=11))
    return end


def test_minute_silence_of_a_small_shop_against_its_hourly_rate(tenant_a) -> None:  # type: ignore[no-untyped-def]
    no_defaults()
    watch("orders", granularity="minute", direction="down", min_duration=10)
    end = _minute_shop((6 * 60, 8 * 60))  # two hours without an order where 12 were expected
    kpi_evaluate(tenant=tenant_a.tenant, now=end + timedelta(minutes=3), granularities={"minute"})
    found = list(Anomaly.objects.filter(kind="kpi", metric="orders"))
    assert len(found) == 1, [(a.occurred_at, a.observed) for a in found]
    silent_from = end - timedelta(hours=8)
    assert silent_from - timedelta(minutes=10) <= found[0].occurred_at <= silent_from
    assert found[0].detected_at is not None and found[0].fingerprint.endswith("@minute")


def test_minute_series_of_a_small_shop_without_silence_is_quiet(tenant_a) -> None:  # type: ignore[no-untyped-def]
    no_defaults()
    watch("orders", granularity="minute", direction="down", min_duration=10)
    end = _minute_shop(None)
    assert kpi_evaluate(tenant=tenant_a.tenant, now=end + timedelta(minutes=3), granularities={"minute"})["buckets"] > 600
    assert not Anomaly.objects.filter(kind="kpi").exists()
