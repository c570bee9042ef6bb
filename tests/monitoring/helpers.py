"""Crafted KPI data for monitoring tests: hourly rollup rows inserted directly, or events through the
real ingestion path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from ingestion.services import events_ingest
from ingestion.tasks import batch_run
from monitoring.models import MonitorState, WatchedSeries
from scoring.models import Anomaly, KpiBucket

T0 = datetime(2026, 2, 2, tzinfo=UTC)  # a Monday


def no_defaults() -> None:
    """Tests watch only what they configure."""
    MonitorState.objects.all().delete()
    MonitorState.objects.create(defaults_created=True)


def watch(metric: str, dimension: str = "total", granularity: str = "hour", **kwargs: Any) -> WatchedSeries:
    kwargs.setdefault("detectors", ["seasonal_z"])
    return WatchedSeries.objects.create(metric=metric, dimension=dimension, granularity=granularity, **kwargs)


def hourly_orders(hours: int, *, seed: int = 0, level: float = 40.0, drop: tuple[int, int] | None = None,
                  drop_to: float = 0.05) -> np.ndarray:
    """Poisson orders per hour with a daily shape; `drop` = [start, end) hours collapsed to drop_to x."""
    rng = np.random.default_rng(seed)
    h = np.arange(hours)
    mu = level * (1.0 + 0.6 * np.sin(2 * np.pi * ((h % 24) - 8) / 24))
    if drop is not None:
        mu[drop[0]:drop[1]] *= drop_to
    return rng.poisson(mu).astype(int)


def put_hours(values: np.ndarray, *, start: datetime = T0, dimension: str = "total", value: str = "",
              first: int = 0, last: int | None = None, aov: float = 50.0) -> None:
    """Hour KpiBucket rows (orders, revenue = orders x aov, sessions = 20 x orders) for hours [first, last)."""
    last = len(values) if last is None else last
    rows = [KpiBucket(granularity="hour", bucket_start=start + timedelta(hours=i), dimension=dimension, value=value,
                      orders=int(values[i]), revenue=float(values[i]) * aov, sessions=int(values[i]) * 20 + 5)
            for i in range(first, last) if values[i] > 0]
    KpiBucket.objects.bulk_create(rows)


def anomaly_set(kind: str = "kpi") -> set[tuple[Any, ...]]:
    out = set()
    for a in Anomaly.objects.filter(kind=kind):
        out.add((a.metric, tuple(sorted(a.dimensions.items())), a.occurred_at, a.direction, a.severity,
                 round(a.expected or 0, 6), round(a.observed or 0, 6), round(a.score, 9),
                 tuple(sorted((k, str(v)) for k, v in a.impact.items())), str(a.root_cause)))
    return out


def ingest(tenant: Any, events: list[dict[str, Any]]) -> None:
    for i in range(0, len(events), 2000):
        result = events_ingest(tenant=tenant, raw_events=events[i:i + 2000], source="api")
        assert not result.rejected, result.rejected[:3]
        assert batch_run(result.batch_id) == "done"
