"""Reads of the scoring layer: KPI series from rollups (or from raw events for combinations the
rollups do not keep), client metric series, anomalies, rules and their versions."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
from django.db import connection
from django.db.models import Q, QuerySet

from .models import Anomaly, KpiBucket, MetricPoint, Rule, RuleVersion
from .rollups import DIMENSIONS, KPIS, MEASURES, bucket_starts


@dataclass
class Series:
    key: dict[str, str]
    points: list[dict[str, Any]] = field(default_factory=list)


def _kpi_value(kpi: Any, parts: dict[str, float]) -> float | None:
    numerator = float(parts[kpi.numerator])
    if kpi.denominator is None:
        return numerator
    denominator = float(parts[kpi.denominator])
    return numerator / denominator if denominator else None


def _point(kpi: Any, start: datetime, parts: dict[str, float], tz: str) -> dict[str, Any]:
    point: dict[str, Any] = {"t": pd.Timestamp(start).tz_convert(tz).isoformat(), "value": _kpi_value(kpi, parts)}
    if kpi.denominator is not None:
        point["numerator"], point["denominator"] = float(parts[kpi.numerator]), float(parts[kpi.denominator])
    return point


def kpi_series(*, tenant: Any, metric: str, granularity: str, start: datetime, end: datetime,
               group_by: str | None = None, filters: dict[str, str] | None = None,
               minute_dimensions: list[str] | None = None) -> tuple[list[Series], str]:
    """Series of a built-in KPI and where it was read from ("rollup" or "events")."""
    filters = filters or {}
    kpi = KPIS[metric]
    filter_dims = set(filters)
    dimension = group_by or (next(iter(filter_dims)) if filter_dims else "total")
    from_rollup = (len(filter_dims) <= 1 and (not filter_dims or filter_dims == {dimension})
                   and (granularity != "minute" or dimension in (minute_dimensions or [])))
    if from_rollup:
        rows = KpiBucket.objects.filter(granularity=granularity, dimension=dimension, bucket_start__gte=start,
                                        bucket_start__lt=end)
        if filter_dims:
            rows = rows.filter(value=filters[dimension])
        grouped: dict[str, list[Any]] = defaultdict(list)
        for row in rows.order_by("value", "bucket_start").values("value", "bucket_start", *MEASURES):
            grouped[row["value"]].append(row)
        source = "rollup"
    else:
        aggregate = _aggregate_event_lines if "product" in filter_dims or group_by == "product" else _aggregate_events
        grouped = aggregate(tenant=tenant, granularity=granularity, start=start, end=end, group_by=group_by,
                            filters=filters)
        source = "events"
    series = []
    for value, rows_ in sorted(grouped.items()):
        key = {} if dimension == "total" and not group_by else {group_by or dimension: value}
        series.append(Series(key=key, points=[_point(kpi, r["bucket_start"], r, tenant.timezone) for r in rows_]))
    return series, source


def _aggregate_events(*, tenant: Any, granularity: str, start: datetime, end: datetime, group_by: str | None,
                      filters: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    from .config import fx_rates_for

    bucket = ("date_trunc('minute', occurred_at)" if granularity == "minute"
              else f"date_trunc('{granularity}', occurred_at AT TIME ZONE %(tz)s) AT TIME ZONE %(tz)s")
    group = DIMENSIONS[group_by] if group_by else "''"
    money = "amount * COALESCE((%(rates)s::jsonb ->> currency)::numeric, 1)"
    where = ["occurred_at >= %(start)s", "occurred_at < %(end)s"]
    params: dict[str, Any] = {"tz": tenant.timezone, "rates": json.dumps(fx_rates_for(tenant)), "start": start,
                              "end": end}
    for i, (dim, value) in enumerate(sorted(filters.items())):
        where.append(f"{DIMENSIONS[dim]} = %(f{i})s")
        params[f"f{i}"] = value
    sql = f"""
        SELECT {bucket} AS bucket_start, COALESCE({group}, '') AS value,
          COALESCE(sum({money}) FILTER (WHERE type = 'order'), 0) AS revenue,
          count(*) FILTER (WHERE type = 'order') AS orders,
          COALESCE(sum(COALESCE(quantity, 1)) FILTER (WHERE type = 'order'), 0) AS units,
          count(*) FILTER (WHERE type = 'click') AS sessions,
          COALESCE(sum(COALESCE(quantity, 1)) FILTER (WHERE type = 'impression'), 0) AS impressions,
          count(*) FILTER (WHERE type = 'return') AS returns,
          COALESCE(sum({money}) FILTER (WHERE type = 'return'), 0) AS refund_amount,
          count(*) FILTER (WHERE type = 'payment') AS payments,
          count(*) FILTER (WHERE type = 'payment' AND status = 'failed') AS payments_failed
        FROM events WHERE {" AND ".join(where)} AND type IN ('order', 'click', 'impression', 'return', 'payment')
        GROUP BY 1, 2 ORDER BY 2, 1
    """
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        names = [c.name for c in cursor.description]
        for row in cursor.fetchall():
            record = dict(zip(names, row, strict=True))
            grouped[record["value"]].append(record)
    return grouped


def _aggregate_event_lines(*, tenant: Any, granularity: str, start: datetime, end: datetime,
                           group_by: str | None, filters: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    """The raw-event answer when the product dimension is involved, counted as the rollups count it:
    an order that lists its items credits each product with its own lines (revenue, units, one order
    per product), other events their own product_id."""
    import numpy as np

    from .config import fx_rates_for
    from .rollups import order_lines

    rates = fx_rates_for(tenant)
    where = ["occurred_at >= %(start)s", "occurred_at < %(end)s"]
    params: dict[str, Any] = {"start": start, "end": end}
    for i, (dim, value) in enumerate(sorted(filters.items())):
        if dim != "product":
            where.append(f"{DIMENSIONS[dim]} = %(f{i})s")
            params[f"f{i}"] = value
    columns = ["type", "occurred_at", "amount", "currency", "quantity", "status", *DIMENSIONS.values(), "attributes"]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(columns)} FROM events WHERE {' AND '.join(where)} "
                       "AND type IN ('order', 'click', 'impression', 'return', 'payment')", params)
        events = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    rate = np.array([rates.get(e["currency"], 1.0) if e["currency"] else 1.0 for e in events], dtype=float)
    lines: dict[int, list[tuple[str, int, float]]] = defaultdict(list)
    orders = np.array([i for i, e in enumerate(events) if e["type"] == "order"], dtype=np.int64)
    for i, product, units, revenue in order_lines(events, orders, rate):
        lines[i].append((product, units, revenue))
    facts: list[tuple[datetime, str, dict[str, float]]] = []  # (moment, group value, measures)
    wanted = filters.get("product")
    for i, e in enumerate(events):
        kind, amount = e["type"], float(e["amount"] or 0) * rate[i]
        quantity = int(e["quantity"]) if e["quantity"] is not None else 1
        base = {"sessions": int(kind == "click"), "impressions": quantity if kind == "impression" else 0,
                "returns": int(kind == "return"), "refund_amount": amount if kind == "return" else 0.0,
                "payments": int(kind == "payment"), "payments_failed": int(kind == "payment" and e["status"] == "failed")}
        parts = ([(p, {"revenue": r, "orders": 1, "units": u}) for p, u, r in lines[i]] if i in lines else
                 [(e["product_id"] or "", {"revenue": amount if kind == "order" else 0.0, "orders": int(kind == "order"),
                                           "units": quantity if kind == "order" else 0})])
        for product, own in parts:
            if wanted is not None and product != wanted:
                continue
            value = product if group_by == "product" else (str(e[DIMENSIONS[group_by]] or "") if group_by else "")
            facts.append((e["occurred_at"], value, {**base, **own}))
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    if not facts:
        return grouped
    buckets = bucket_starts(pd.Series(pd.to_datetime([f[0] for f in facts], utc=True)), granularity, tenant.timezone)
    sums: dict[tuple[str, Any], dict[str, float]] = {}
    for (_, value, measures), bucket in zip(facts, buckets, strict=True):
        total = sums.setdefault((value, bucket), dict.fromkeys(MEASURES, 0))
        for name, amount in measures.items():
            total[name] += amount
    for (value, bucket), total in sorted(sums.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        grouped[value].append({"bucket_start": bucket.to_pydatetime(), "value": value, **total})
    return grouped


def metric_series(*, tenant: Any, metric: str, granularity: str | None, start: datetime, end: datetime,
                  aggregation: str, group_by: str | None = None, filters: dict[str, str] | None = None) -> list[Series]:
    """A client-sent metric at its own cadence (granularity None) or re-bucketed with its aggregation."""
    filters = filters or {}
    dimension = group_by or (next(iter(filters)) if filters else "total")
    rows = MetricPoint.objects.filter(metric=metric, dimension=dimension, at__gte=start, at__lt=end)
    if filters.get(dimension):
        rows = rows.filter(value=filters[dimension])
    frame = pd.DataFrame.from_records(rows.order_by("value", "at").values("value", "at", "total", "count", "last"),
                                      columns=["value", "at", "total", "count", "last"])
    series = []
    for value, part in frame.groupby("value", sort=True):
        part = part.copy()
        part["at"] = pd.to_datetime(part["at"], utc=True)
        if granularity:
            part["at"] = bucket_starts(part["at"], granularity, tenant.timezone)
            part = part.groupby("at", sort=True).agg(total=("total", "sum"), count=("count", "sum"),
                                                     last=("last", "last")).reset_index()
        values = {"sum": part["total"], "mean": part["total"] / part["count"].clip(lower=1), "last": part["last"]}[
            aggregation]
        key = {} if dimension == "total" and not group_by else {dimension: str(value)}
        series.append(Series(key=key, points=[{"t": t.tz_convert(tenant.timezone).isoformat(), "value": float(v)}
                                              for t, v in zip(part["at"], values, strict=True)]))
    return series


# ---------------------------------------------------------------------------------------------
# anomalies and rules

SEVERITY_ORDER = ("low", "medium", "high", "critical")


def anomalies_filter(*, start: datetime | None = None, end: datetime | None = None, kind: str | None = None,
                     severity: str | None = None, detector: str | None = None, metric: str | None = None,
                     entity: str | None = None, status: str | None = None, q: str | None = None) -> QuerySet[Anomaly]:
    """Anomalies matching the DESIGN.md filters. `start`/`end` bound the data time (occurred_at);
    `severity` means "at least"; `detector` matches a detector score or a reason (e.g. "rule:shared_ip");
    `q` is a case-insensitive substring search over reasons, entity and metric."""
    rows = Anomaly.objects.all()
    if start is not None:
        rows = rows.filter(occurred_at__gte=start)
    if end is not None:
        rows = rows.filter(occurred_at__lt=end)
    if kind:
        rows = rows.filter(kind=kind)
    if severity:
        rows = rows.filter(severity__in=SEVERITY_ORDER[SEVERITY_ORDER.index(severity):])
    if detector:
        rows = rows.filter(Q(detectors__has_key=detector) | Q(reasons__contains=[{"detector": detector}]))
    if metric:
        rows = rows.filter(metric=metric)
    if entity:
        rows = rows.filter(entity=entity)
    if status:
        rows = rows.filter(status=status)
    if q:
        rows = rows.filter(Q(entity__icontains=q) | Q(metric__icontains=q) | Q(reasons__icontains=q))
    return rows


def rules_list() -> QuerySet[Rule]:
    return Rule.objects.all().order_by("name")


def rule_versions(*, rule: Rule) -> QuerySet[RuleVersion]:
    """Every version of a rule, newest first (including those from before a rename)."""
    return RuleVersion.objects.filter(Q(rule=rule) | Q(rule__isnull=True, rule_name=rule.name)).order_by("-id")
