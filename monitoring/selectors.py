"""Reads for KPI monitoring: watched series, rollup matrices on the tenant's local grid, breakdowns by
dimension (rollups for totals, raw events under a filter), stock levels and sales velocity."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from django.db import connection

from scoring.rollups import DIMENSIONS, KPIS, MEASURES

from .models import KnownEvent, WatchedSeries

GRANULARITY_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


# ----------------------------------------------------------------------------- time grid

def local_index(utc: Any, seconds: int, tz: str) -> np.ndarray:
    """Grid index of UTC instants: the tenant's local wall-clock time // cadence."""
    ts = pd.DatetimeIndex(pd.to_datetime(utc, utc=True))
    local = ts.tz_convert(ZoneInfo(tz)).tz_localize(None)
    return local.as_unit("s").asi8 // seconds


def index_utc(index: Any, seconds: int, tz: str) -> np.ndarray:
    """UTC epoch seconds of the local bucket starts of grid indexes (DST gaps shift forward)."""
    idx = np.atleast_1d(np.asarray(index, dtype=np.int64))
    local = pd.DatetimeIndex((idx * seconds).astype("datetime64[s]"))
    aware = local.tz_localize(ZoneInfo(tz), ambiguous=np.ones(idx.size, dtype=bool), nonexistent="shift_forward")
    return aware.as_unit("s").asi8


def utc_datetime(epoch: int) -> datetime:
    return datetime.fromtimestamp(int(epoch), tz=UTC)


def last_closed_index(now: datetime, seconds: int, tz: str, grace: int) -> int:
    """Index of the newest bucket whose end is at least `grace` seconds before `now`."""
    moment = pd.Timestamp(now).tz_convert("UTC") - pd.Timedelta(seconds=grace)
    return int(local_index([moment], seconds, tz)[0]) - 1


# ----------------------------------------------------------------------------- configuration

def watched_series(*, enabled_only: bool = True) -> list[WatchedSeries]:
    rows = WatchedSeries.objects.all()
    return list(rows.filter(enabled=True) if enabled_only else rows)


def known_events() -> list[KnownEvent]:
    return list(KnownEvent.objects.all())


def kpi_values(*, granularity: str, dimension: str, since: datetime | None = None,
               until: datetime | None = None) -> list[str]:
    """Dimension values with rollup data in [since, until] (all time when since is None)."""
    rows = _bucket_filter(granularity, dimension, since, until)
    return sorted(rows.values_list("value", flat=True).distinct())


def _bucket_filter(granularity: str, dimension: str, since: datetime | None, until: datetime | None):  # type: ignore[no-untyped-def]
    from scoring.models import KpiBucket

    rows = KpiBucket.objects.filter(granularity=granularity, dimension=dimension)
    if since is not None:
        rows = rows.filter(bucket_start__gte=since)
    if until is not None:
        rows = rows.filter(bucket_start__lte=until)
    return rows


def first_buckets(*, granularity: str, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], datetime]:
    """First bucket with data per (dimension, value)."""
    if not keys:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT b.dimension, b.value, min(b.bucket_start) FROM scoring_kpibucket b
               JOIN unnest(%s::text[], %s::text[]) AS k(d, v) ON b.dimension = k.d AND b.value = k.v
               WHERE b.granularity = %s GROUP BY 1, 2""",
            [[k[0] for k in keys], [k[1] for k in keys], granularity])
        return {(d, v): t for d, v, t in cursor.fetchall()}


def metric_values(*, metric: str, dimension: str) -> list[str]:
    from scoring.models import MetricPoint

    return sorted(MetricPoint.objects.filter(metric=metric, dimension=dimension)
                  .values_list("value", flat=True).distinct())


# ----------------------------------------------------------------------------- matrices

def kpi_frames(*, granularity: str, keys: Sequence[tuple[str, str]], start: datetime, end: datetime,
               measures: Sequence[str] = MEASURES, at: Sequence[datetime] | None = None) -> pd.DataFrame:
    """Rollup rows (dimension, value, epoch = UTC bucket start in seconds, measures) in [start, end),
    only the buckets starting at `at` when given.

    Read with COPY into pandas' C parser: the live path reads ~170 minutes x thousands of series, where
    building Python rows per value would dominate."""
    cols = [m for m in MEASURES if m in set(measures)]
    columns = ["dimension", "value", "epoch", *cols]
    if not keys:
        return pd.DataFrame(columns=columns)
    import io

    from psycopg import sql

    query = sql.SQL(
        "COPY (SELECT b.dimension, b.value, extract(epoch FROM b.bucket_start)::bigint, {cols} "
        "FROM scoring_kpibucket b JOIN unnest({d}::text[], {v}::text[]) AS k(d, v) "
        "ON b.dimension = k.d AND b.value = k.v "
        "WHERE b.granularity = {g} AND b.bucket_start >= {s} AND b.bucket_start < {e}{only}) TO STDOUT (FORMAT csv)"
    ).format(cols=sql.SQL(", ").join(sql.SQL(f"b.{m}::float8") for m in cols),
             d=sql.Literal([k[0] for k in keys]), v=sql.Literal([k[1] for k in keys]), g=sql.Literal(granularity),
             s=sql.Literal(start), e=sql.Literal(end),
             only=sql.SQL("") if at is None else sql.SQL(" AND b.bucket_start = ANY({}::timestamptz[])").format(
                 sql.Literal(list(at))))
    buffer = io.BytesIO()
    connection.ensure_connection()
    with connection.connection.cursor() as cursor, cursor.copy(query) as copy:
        for block in copy:
            buffer.write(block)
    buffer.seek(0)
    if not buffer.getbuffer().nbytes:
        return pd.DataFrame(columns=columns)
    return pd.read_csv(buffer, header=None, names=columns, dtype={"dimension": str, "value": str},
                       keep_default_na=False)


def local_index_epoch(epoch: Any, seconds: int, tz: str) -> np.ndarray:
    return local_index(pd.to_datetime(np.asarray(epoch, dtype=np.int64), unit="s", utc=True), seconds, tz)


def metric_frames(*, metric: str, keys: Sequence[tuple[str, str]], start: datetime, end: datetime) -> pd.DataFrame:
    from scoring.models import MetricPoint

    dims = sorted({k[0] for k in keys})
    rows = MetricPoint.objects.filter(metric=metric, dimension__in=dims, at__gte=start, at__lt=end)
    return pd.DataFrame.from_records(rows.values("dimension", "value", "at", "total", "count", "last"),
                                     columns=["dimension", "value", "at", "total", "count", "last"])


def metric_point_times(*, metric: str, dimension: str, value: str, limit: int = 60) -> list[datetime]:
    from scoring.models import MetricPoint

    rows = MetricPoint.objects.filter(metric=metric, dimension=dimension, value=value).order_by("-at")
    return list(rows.values_list("at", flat=True)[:limit])


# ----------------------------------------------------------------------------- breakdowns

def breakdown_rollups(*, granularity: str, start: datetime, end: datetime,
                      dimensions: Iterable[str]) -> pd.DataFrame:
    """Sums of every measure per (dimension, value) in [start, end) from the rollups (no filter)."""
    dims = list(dimensions)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT dimension, value, {", ".join(f"sum({m})::float8" for m in MEASURES)} FROM scoring_kpibucket
                WHERE granularity = %s AND bucket_start >= %s AND bucket_start < %s AND dimension = ANY(%s)
                GROUP BY 1, 2""", [granularity, start, end, ["total", *dims]])
        return pd.DataFrame(cursor.fetchall(), columns=["dimension", "value", *MEASURES])


def breakdown_events(*, tenant: Any, start: datetime, end: datetime, filters: dict[str, str],
                     dimensions: Iterable[str]) -> pd.DataFrame:
    """The same sums from raw events under dimension filters (the rollups keep no cross-dimension
    buckets), one GROUPING SETS query: the total and each dimension."""
    from scoring.config import fx_rates_for

    dims = [d for d in dimensions if d in DIMENSIONS]
    money = "amount * COALESCE((%(rates)s::jsonb ->> currency)::numeric, 1)"
    where = ["occurred_at >= %(start)s", "occurred_at < %(end)s",
             "type IN ('order', 'click', 'impression', 'return', 'payment')"]
    params: dict[str, Any] = {"rates": json.dumps(fx_rates_for(tenant)), "start": start, "end": end}
    for i, (dim, value) in enumerate(sorted(filters.items())):
        where.append(f"{DIMENSIONS[dim]} = %(f{i})s")
        params[f"f{i}"] = value
    cols = [DIMENSIONS[d] for d in dims]
    sets = ", ".join(["()", *[f"({c})" for c in cols]])
    which = " ".join(f"WHEN GROUPING({c}) = 0 THEN '{d}'" for d, c in zip(dims, cols, strict=True))
    value = "COALESCE(" + ", ".join([*(f"CASE WHEN GROUPING({c}) = 0 THEN COALESCE({c}, '') END" for c in cols),
                                     "''"]) + ")"
    dim_expr = f"CASE {which} ELSE 'total' END" if dims else "'total'"
    sql = f"""
        SELECT {dim_expr} AS dimension, {value} AS value,
          COALESCE(sum({money}) FILTER (WHERE type = 'order'), 0)::float8,
          count(*) FILTER (WHERE type = 'order')::float8,
          COALESCE(sum(COALESCE(quantity, 1)) FILTER (WHERE type = 'order'), 0)::float8,
          count(*) FILTER (WHERE type = 'click')::float8,
          COALESCE(sum(COALESCE(quantity, 1)) FILTER (WHERE type = 'impression'), 0)::float8,
          count(*) FILTER (WHERE type = 'return')::float8,
          COALESCE(sum({money}) FILTER (WHERE type = 'return'), 0)::float8,
          count(*) FILTER (WHERE type = 'payment')::float8,
          count(*) FILTER (WHERE type = 'payment' AND status = 'failed')::float8
        FROM events WHERE {" AND ".join(where)}
        GROUP BY GROUPING SETS ({sets})"""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        frame = pd.DataFrame(cursor.fetchall(), columns=["dimension", "value", *MEASURES])
    # an empty filter match still has a total row of zeros from the () grouping set
    return frame[(frame["dimension"] == "total") | (frame["value"] != "")]


# ----------------------------------------------------------------------------- stock

def stock_rows() -> list[dict[str, Any]]:
    from scoring.models import StockLevel

    from .models import StockThreshold

    thresholds = {t.product_id: t for t in StockThreshold.objects.all()}
    out = []
    for level in StockLevel.objects.all().order_by("product_id"):
        t = thresholds.get(level.product_id)
        out.append({"product_id": level.product_id, "level": level.level, "updated_at": level.updated_at,
                    "warning": t.warning if t and t.warning is not None else level.threshold,
                    "warning_explicit": bool(t and t.warning is not None),
                    "critical": (t.critical if t and t.critical is not None else level.critical_threshold) or 0,
                    "lead_time_days": t.lead_time_days if t else None})
    return out


def daily_units(*, products: Sequence[str], end: datetime, days: int) -> np.ndarray:
    """Units sold per product in each of the `days` 24-hour windows before `end` (hour rollups); NaN for
    windows that end before the tenant's first product sales data (unknown, not zero: a new tenant)."""
    out = np.zeros((len(products), days))
    if not products:
        return out
    start = end - pd.Timedelta(days=days)
    with connection.cursor() as cursor:
        cursor.execute("SELECT min(bucket_start) FROM scoring_kpibucket WHERE granularity = 'hour' "
                       "AND dimension = 'product'")
        first = cursor.fetchone()[0]
        if first is None:
            return out
        # a window counts once the data covers most of it (the first, partial day is still a busy day)
        known = int((end - first).total_seconds() // 86400)
        if known < days:
            out[:, :days - max(known, 1)] = np.nan
        cursor.execute(
            """SELECT value, floor(extract(epoch FROM (%s - bucket_start)) / 86400)::int, sum(units)::float8
               FROM scoring_kpibucket WHERE granularity = 'hour' AND dimension = 'product' AND value = ANY(%s)
                 AND bucket_start >= %s AND bucket_start < %s GROUP BY 1, 2""",
            [end, list(products), start, end])
        pos = {p: i for i, p in enumerate(products)}
        for product, ago, units in cursor.fetchall():
            if 0 <= ago < days:
                out[pos[product], days - 1 - ago] = units
    return out


def kpi_of(metric: str) -> Any:
    return KPIS.get(metric)
