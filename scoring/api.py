"""KPI series and (later) anomalies, fraud-check and rules: thin views over selectors and services."""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from pulse.lib.params import parse_moment
from tenants.config import tenant_section

from .models import MetricPoint
from .rollups import DIMENSIONS, GRANULARITIES, KPIS
from .selectors import kpi_series, metric_series


def window(request: Request, tz: str, default_days: int = 7):  # type: ignore[no-untyped-def]
    params = request.query_params
    end = parse_moment(params.get("to"), "to", tz=tz, end_of_day=True) or timezone.now()
    start = parse_moment(params.get("from"), "from", tz=tz) or end - timedelta(days=default_days)
    if start >= end:
        raise ValidationError({"from": ["'from' must be before 'to'."]})
    return start, end


def dimension_params(request: Request) -> tuple[str | None, dict[str, str]]:
    params = request.query_params
    group_by = params.get("group_by") or None
    if group_by is not None and group_by not in DIMENSIONS:
        raise ValidationError({"group_by": [f"Use one of {', '.join(DIMENSIONS)}."]})
    filters = {dim: params[dim] for dim in DIMENSIONS if params.get(dim)}
    return group_by, filters


class MetricsView(APIView):
    """KPI series from the rollups, in the tenant's time zone."""

    required_scopes = {"GET": "read"}

    @extend_schema(parameters=[
        OpenApiParameter("metric", str, required=True, description=f"{', '.join(KPIS)} or a client metric name"),
        OpenApiParameter("granularity", str, enum=list(GRANULARITIES)),
        OpenApiParameter("from", str), OpenApiParameter("to", str),
        OpenApiParameter("group_by", str, enum=list(DIMENSIONS)),
        *[OpenApiParameter(dim, str, description=f"filter on {dim}") for dim in DIMENSIONS],
    ], responses={200: dict})
    def get(self, request: Request) -> Response:
        tenant = request._request.tenant
        params = request.query_params
        metric = params.get("metric", "")
        granularity = params.get("granularity")
        if granularity is not None and granularity not in GRANULARITIES:
            raise ValidationError({"granularity": [f"Use one of {', '.join(GRANULARITIES)}."]})
        start, end = window(request, tenant.timezone)
        group_by, filters = dimension_params(request)
        kpi_config = tenant_section(tenant, "kpi")
        if metric in KPIS:
            granularity = granularity or "hour"
            series, source = kpi_series(tenant=tenant, metric=metric, granularity=granularity, start=start, end=end,
                                        group_by=group_by, filters=filters,
                                        minute_dimensions=kpi_config.minute_dimensions)
        elif metric and MetricPoint.objects.filter(metric=metric).exists():
            aggregation = kpi_config.metric_aggregation.get(metric, "mean")
            series = metric_series(tenant=tenant, metric=metric, granularity=granularity, start=start, end=end,
                                   aggregation=aggregation, group_by=group_by, filters=filters)
            source = f"client metric ({aggregation}, {granularity or 'native cadence'})"
        else:
            raise ValidationError({"metric": [f"Unknown metric '{metric}'. Built-in: {', '.join(KPIS)}; or a "
                                              "metric name your events have sent."]})
        return Response({"metric": metric, "granularity": granularity, "timezone": tenant.timezone,
                         "from": start.isoformat(), "to": end.isoformat(), "group_by": group_by,
                         "filters": filters, "source": source, "series": [asdict(s) for s in series]})
