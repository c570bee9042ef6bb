"""KPI series straight from event dicts: for plots, tests and sanity checks of the
simulator (the platform computes its own rollups; this is the independent yardstick)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np

from simulator.labels import parse_time

# metric -> (event type, value) ; value "count", "amount" or "quantity"
_BASE: dict[str, tuple[str, str, Mapping[str, str]]] = {
    "orders": ("order", "count", {}),
    "revenue": ("order", "amount", {}),
    "units": ("order", "quantity", {}),
    "sessions": ("click", "count", {}),
    "clicks": ("click", "count", {}),
    "impressions": ("impression", "quantity", {}),
    "payments": ("payment", "count", {}),
    "failed_payments": ("payment", "count", {"status": "failed"}),
    "returns": ("return", "count", {}),
    "return_amount": ("return", "amount", {}),
}
_RATIOS = {"ctr": ("clicks", "impressions"), "conversion_rate": ("orders", "sessions"),
           "aov": ("revenue", "orders"), "payment_failure_rate": ("failed_payments", "payments")}
METRICS = tuple(_BASE) + tuple(_RATIOS)


def kpi_series(events: Iterable[Mapping[str, Any]], metric: str, *, start: datetime, end: datetime,
               step_seconds: int = 3600, filters: Mapping[str, str] | None = None) -> list[tuple[datetime, float]]:
    """Bucketed KPI over [start, end): (bucket start, value); ratios are NaN where undefined.

    `filters` keeps events whose fields equal the given values (e.g. {"channel": "social"});
    a filter on a field an event type lacks (impressions have no product) drops that event.
    """
    if metric in _RATIOS:
        num, den = _RATIOS[metric]
        events = list(events)
        a = kpi_series(events, num, start=start, end=end, step_seconds=step_seconds, filters=filters)
        b = kpi_series(events, den, start=start, end=end, step_seconds=step_seconds, filters=filters)
        return [(t, (x / y) if y else float("nan")) for (t, x), (_, y) in zip(a, b, strict=True)]
    if metric not in _BASE:
        raise ValueError(f"unknown metric {metric!r}; known {METRICS}")
    etype, value, extra = _BASE[metric]
    conditions = {**(filters or {}), **extra}
    t0, t1 = start.timestamp(), end.timestamp()
    n = int(np.ceil((t1 - t0) / step_seconds))
    ts: list[float] = []
    vals: list[float] = []
    for ev in events:
        if ev.get("type") != etype or any(ev.get(k) != v for k, v in conditions.items()):
            continue
        ts.append(parse_time(ev["timestamp"]).timestamp())
        vals.append(1.0 if value == "count" else float(ev.get(value) or 0))
    t = np.asarray(ts)
    keep = (t >= t0) & (t < t1)
    idx = ((t[keep] - t0) // step_seconds).astype(np.int64)
    sums = np.bincount(idx, weights=np.asarray(vals)[keep], minlength=n)[:n]
    return [(datetime.fromtimestamp(t0 + i * step_seconds, UTC), float(v)) for i, v in enumerate(sums)]
