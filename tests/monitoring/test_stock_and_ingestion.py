"""Stock alerts once per crossing and stock-out prediction; KPI evaluation on real rollups (ingestion
path) in a tenant's own time zone; campaign collapse from the default configuration."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from monitoring.models import StockThreshold
from monitoring.selectors import last_closed_index, local_index
from monitoring.services import kpi_evaluate, stock_check
from scoring.models import Anomaly, KpiBucket, StockLevel
from tests.monitoring.helpers import ingest, no_defaults, watch

NOW = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)


def _sales(product: str, per_day: int, days: int = 7) -> None:
    KpiBucket.objects.bulk_create([
        KpiBucket(granularity="hour", bucket_start=NOW - timedelta(hours=h), dimension="product", value=product,
                  units=per_day // 24 + (1 if h % 24 < per_day % 24 else 0))
        for h in range(1, 24 * days + 1)])


def test_stock_alerts_once_per_episode(tenant_a) -> None:  # type: ignore[no-untyped-def]
    StockLevel.objects.create(product_id="sku-1", level=50, threshold=20, updated_at=NOW)
    StockThreshold.objects.create(product_id="sku-1", critical=5)
    _sales("sku-1", 2)
    assert stock_check(tenant=tenant_a.tenant, now=NOW)["alerts"] == 0
    StockLevel.objects.filter(product_id="sku-1").update(level=15)  # reorder point: the normal cycle
    assert stock_check(tenant=tenant_a.tenant, now=NOW)["alerts"] == 0
    StockLevel.objects.filter(product_id="sku-1").update(level=3)
    assert stock_check(tenant=tenant_a.tenant, now=NOW)["alerts"] == 1  # at/below critical: out
    assert stock_check(tenant=tenant_a.tenant, now=NOW)["alerts"] == 0  # still out: no repeat
    StockLevel.objects.filter(product_id="sku-1").update(level=4)  # a return: not a restock
    assert stock_check(tenant=tenant_a.tenant, now=NOW)["alerts"] == 0
    StockLevel.objects.filter(product_id="sku-1").update(level=100)  # restocked: episode closed
    assert stock_check(tenant=tenant_a.tenant, now=NOW)["alerts"] == 0
    StockLevel.objects.filter(product_id="sku-1").update(level=2)
    assert stock_check(tenant=tenant_a.tenant, now=NOW)["alerts"] == 1  # a new episode alerts again
    levels = list(Anomaly.objects.filter(kind="stock", detectors__has_key="stock_threshold").order_by("id")
                  .values_list("severity", "entity", "observed"))
    assert levels == [("high", "sku-1", 3.0), ("high", "sku-1", 2.0)]


def test_configured_warning_threshold_alerts_its_crossing(tenant_a) -> None:  # type: ignore[no-untyped-def]
    StockLevel.objects.create(product_id="sku-2", level=50, threshold=20, updated_at=NOW)
    StockThreshold.objects.create(product_id="sku-2", warning=30)
    assert stock_check(tenant=tenant_a.tenant, now=NOW)["alerts"] == 0
    StockLevel.objects.filter(product_id="sku-2").update(level=25)
    assert stock_check(tenant=tenant_a.tenant, now=NOW)["alerts"] == 1
    StockLevel.objects.filter(product_id="sku-2").update(level=22)
    assert stock_check(tenant=tenant_a.tenant, now=NOW)["alerts"] == 0
    a = Anomaly.objects.get(kind="stock")
    assert (a.severity, a.observed, a.expected) == ("medium", 25.0, 30.0)


def test_high_demand_predicts_stockout_before_the_threshold(tenant_a) -> None:  # type: ignore[no-untyped-def]
    # 300 units left, far above the 20-unit threshold, but selling 120/day: 2.5 days of cover < 3-day lead time
    StockLevel.objects.create(product_id="hot", level=300, threshold=20, updated_at=NOW)
    StockLevel.objects.create(product_id="slow", level=300, threshold=20, updated_at=NOW)
    _sales("hot", 120)
    _sales("slow", 5)
    assert stock_check(tenant=tenant_a.tenant, now=NOW)["alerts"] == 1
    a = Anomaly.objects.get(kind="stock")
    assert a.entity == "hot" and a.detectors == {"stockout_forecast": 1.0} and a.severity == "high"
    assert abs(a.impact["days_of_cover"] - 2.5) < 0.1 and abs(a.impact["velocity_per_day"] - 120) < 1
    assert a.impact["stockout_at"].startswith("2026-03-23")
    assert "before the expected restock" in a.reasons[0]["text"]
    assert stock_check(tenant=tenant_a.tenant, now=NOW)["alerts"] == 0


def _hourly_events(start: datetime, hours: int, *, outage: tuple[int, int], seed: int) -> list[dict[str, object]]:
    rng = np.random.default_rng(seed)
    events: list[dict[str, object]] = []
    for h in range(hours):
        local_hour = h % 24  # the series starts at local midnight
        level = 12 * (1.0 + 0.7 * np.sin(2 * np.pi * (local_hour - 8) / 24))
        if outage[0] <= h < outage[1]:
            level = 0.0
        for i in range(int(rng.poisson(level))):
            ts = start + timedelta(hours=h, seconds=int(rng.integers(0, 3600)))
            events.append({"event_id": f"o{seed}-{h}-{i}", "type": "order", "timestamp": ts.isoformat(),
                           "amount": "40.00", "channel": "web" if i % 3 else "email", "order_id": f"o{h}-{i}"})
    return events


def test_day_series_follow_the_tenants_own_days(tenant_b) -> None:  # type: ignore[no-untyped-def]
    tenant_b.activate()  # America/Los_Angeles
    no_defaults()
    watch("orders", granularity="hour")
    watch("orders", granularity="day", detectors=["seasonal_z"])
    start = datetime(2026, 6, 1, 7, 0, tzinfo=UTC)  # local midnight, June 1
    hours = 24 * 9
    outage = (24 * 8 + 9, 24 * 8 + 13)  # 09:00-13:00 local on June 9
    ingest(tenant_b.tenant, _hourly_events(start, hours, outage=outage, seed=5))
    day_starts = set(KpiBucket.objects.filter(granularity="day", dimension="total")
                     .values_list("bucket_start", flat=True))
    assert {d.hour for d in day_starts} == {7}  # local midnight
    # at 06:59 UTC on June 10 (23:59 local on June 9) June 9 is still open; at 07:03 it is closed
    assert last_closed_index(datetime(2026, 6, 10, 6, 59, tzinfo=UTC), 86400, tenant_b.tenant.timezone, 120) == \
        local_index([start + timedelta(days=7)], 86400, tenant_b.tenant.timezone)[0]
    counts = kpi_evaluate(tenant=tenant_b.tenant, now=start + timedelta(hours=hours, minutes=3))
    assert counts["buckets"] == hours + 9
    drop = Anomaly.objects.get(kind="kpi", metric="orders", direction="down", impact__granularity="hour")
    assert drop.occurred_at == start + timedelta(hours=outage[0])
    assert drop.root_cause and drop.root_cause[0]["dimension"] == "channel"


def test_campaign_ctr_collapse_from_default_configuration(tenant_a) -> None:  # type: ignore[no-untyped-def]
    # default watched series include CTR per campaign (drops): a campaign whose clicks vanish is reported
    rng = np.random.default_rng(7)
    t0 = datetime(2026, 4, 6, tzinfo=UTC)
    rows = []
    hours = 24 * 9
    for h in range(hours):
        shape = 1.0 + 0.5 * np.sin(2 * np.pi * (h % 24 - 8) / 24)
        for campaign, ctr in (("spring", 0.04), ("brand", 0.06)):
            imps = int(rng.poisson(2000 * shape))
            rate = ctr * (0.1 if campaign == "spring" and h >= hours - 3 else 1.0)
            rows.append(KpiBucket(granularity="hour", bucket_start=t0 + timedelta(hours=h), dimension="campaign",
                                  value=campaign, impressions=imps, sessions=int(rng.binomial(imps, rate))))
    KpiBucket.objects.bulk_create(rows)
    kpi_evaluate(tenant=tenant_a.tenant, now=t0 + timedelta(hours=hours, minutes=3), granularities={"hour"})
    found = Anomaly.objects.filter(kind="kpi", metric="ctr")
    assert [(a.dimensions, a.direction, a.entity) for a in found] == [({"campaign": "spring"}, "down", "spring")]
    a = found.get()
    assert a.occurred_at == t0 + timedelta(hours=hours - 3) and "ratio_binomial" in a.detectors


def test_cover_alert_does_not_flap_around_the_cut(tenant_a) -> None:  # type: ignore[no-untyped-def]
    StockLevel.objects.create(product_id="hot", level=300, threshold=20, updated_at=NOW)
    _sales("hot", 120)
    assert stock_check(tenant=tenant_a.tenant, now=NOW)["alerts"] == 1
    StockLevel.objects.filter(product_id="hot").update(level=800)  # 6.7 days: just out of lead + safety
    assert stock_check(tenant=tenant_a.tenant, now=NOW)["alerts"] == 0
    StockLevel.objects.filter(product_id="hot").update(level=700)  # back in: still the same alert
    assert stock_check(tenant=tenant_a.tenant, now=NOW)["alerts"] == 0
    StockLevel.objects.filter(product_id="hot").update(level=3000)  # restocked: re-armed
    assert stock_check(tenant=tenant_a.tenant, now=NOW)["alerts"] == 0
    StockLevel.objects.filter(product_id="hot").update(level=600)
    assert stock_check(tenant=tenant_a.tenant, now=NOW)["alerts"] == 1
