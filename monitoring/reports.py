"""Computed reads: forecasts (cached Prophet tables when fresh, else a bounded on-demand fit) and
"why did this KPI change" breakdowns."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from scoring.kpi.forecast import forecast
from scoring.kpi.series import Cadence
from scoring.rollups import KPIS

from . import selectors
from .engine import prophet_history
from .models import SeriesFit, SeriesState

MAX_HORIZON = {"minute": 1440, "hour": 24 * 14, "day": 365}
# On-demand fits read at most this much history, so a request stays within a few seconds.
ON_DEMAND_HISTORY = {"minute": 1440, "hour": 24 * 35, "day": 365}


def forecast_points(*, tenant: Any, metric: str, granularity: str, horizon: int, filters: dict[str, str],
                    now: datetime, grace: int) -> dict[str, Any]:
    seconds = selectors.GRANULARITY_SECONDS[granularity]
    tz = tenant.timezone
    close = selectors.last_closed_index(now, seconds, tz, grace)
    wanted = np.arange(close + 1, close + 1 + horizon)
    dimension, value = next(iter(filters.items())) if len(filters) == 1 else ("total", "")
    if len(filters) <= 1:
        fit = SeriesFit.objects.filter(detector="prophet", state__in=SeriesState.objects.filter(
            metric=metric, dimension=dimension, value=value, granularity=granularity)).first()
        if fit is not None:
            table = fit.table
            k = wanted - int(table["start"])
            if k.size and k[0] >= 0 and k[-1] < len(table["yhat"]):
                rows = [(table["yhat"][i], table["lower"][i], table["upper"][i]) for i in k]
                return _answer(wanted, rows, seconds, tz, "cached prophet fit")
    times, values = _history(tenant=tenant, metric=metric, granularity=granularity, filters=filters, close=close)
    kpi = KPIS[metric]
    kind = "gauge" if kpi.denominator else ("money" if kpi.money else "count")
    if np.isfinite(values).sum() == 0:
        return {"source": "no data", "points": []}
    ok = np.isfinite(values)
    last = int(times[ok][-1])
    steps = int(close - last + horizon)
    frame = forecast((times[ok] * seconds).astype("datetime64[s]"), values[ok], steps, seconds, kind=kind,
                     interval_width=0.95)
    frame = frame.iloc[-horizon:]
    rows = list(zip(frame["yhat"], frame["yhat_lower"], frame["yhat_upper"], strict=True))
    return _answer(wanted, rows, seconds, tz, "fitted on demand")


def _answer(index: np.ndarray, rows: list[tuple[float, float, float]], seconds: int, tz: str,
            source: str) -> dict[str, Any]:
    utc = selectors.index_utc(index, seconds, tz)
    points = []
    for t, (yhat, lo, hi) in zip(utc, rows, strict=True):
        points.append({"t": pd.Timestamp(int(t), unit="s", tz="UTC").tz_convert(tz).isoformat(),
                       "yhat": float(yhat), "yhat_lower": float(lo), "yhat_upper": float(hi)})
    return {"source": source, "points": points}


def _history(*, tenant: Any, metric: str, granularity: str, filters: dict[str, str],
             close: int) -> tuple[np.ndarray, np.ndarray]:
    """The series on the local grid up to the last closed bucket (additive gaps are zeros)."""
    from scoring.selectors import kpi_series
    from tenants.config import tenant_section

    seconds = selectors.GRANULARITY_SECONDS[granularity]
    tz = tenant.timezone
    n = min(ON_DEMAND_HISTORY[granularity], prophet_history(Cadence(seconds)))
    lo = close - n + 1
    utc = selectors.index_utc([lo, close + 1], seconds, tz)
    series, _ = kpi_series(tenant=tenant, metric=metric, granularity=granularity,
                           start=selectors.utc_datetime(int(utc[0])), end=selectors.utc_datetime(int(utc[1])),
                           filters=filters, minute_dimensions=tenant_section(tenant, "kpi").minute_dimensions)
    kpi = KPIS[metric]
    values = np.full(n, np.nan)
    times = np.arange(lo, close + 1)
    points = series[0].points if series else []
    if points:
        idx = selectors.local_index([p["t"] for p in points], seconds, tz) - lo
        vals = np.array([np.nan if p["value"] is None else p["value"] for p in points], dtype=float)
        keep = (idx >= 0) & (idx < n)
        if kpi.denominator is None:
            values[int(idx[keep].min()):] = 0.0
        values[idx[keep]] = vals[keep]
    return times, values
