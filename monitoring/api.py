"""Watched KPI series, known-event calendar, forecasts and change explanations. Thin views: validation
in serializers, work in services/reports. Config writes need `admin`, reads `read`."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from pulse.lib.params import parse_moment
from scoring.rollups import DIMENSIONS, KPIS
from tenants.config import tenant_section

from . import reports, services
from .engine import KNOWN_DETECTORS
from .models import KnownEvent, WatchedSeries

CONFIG_SCOPES = {"GET": "read", "POST": "admin", "PUT": "admin", "PATCH": "admin", "DELETE": "admin"}
DIMENSION_CHOICES = ["total", *DIMENSIONS]


class WatchedSeriesSerializer(serializers.ModelSerializer):
    dimension = serializers.ChoiceField(choices=DIMENSION_CHOICES, default="total")
    detectors = serializers.ListField(child=serializers.ChoiceField(choices=list(KNOWN_DETECTORS)), required=False)
    min_relative_change = serializers.FloatField(min_value=0, max_value=10, required=False)
    min_duration = serializers.IntegerField(min_value=1, max_value=1000, required=False)
    z_threshold = serializers.FloatField(min_value=1, max_value=50, required=False)

    class Meta:
        model = WatchedSeries
        fields = ["id", "metric", "dimension", "value", "granularity", "detectors", "consensus", "direction",
                  "min_relative_change", "min_duration", "z_threshold", "enabled", "is_default", "created_at",
                  "updated_at"]
        read_only_fields = ["is_default", "created_at", "updated_at"]

    def validate_consensus(self, value: str) -> str:
        if value not in ("auto", "pairwise", "all") and not (value.isdigit() and 1 <= int(value) <= 4):
            raise serializers.ValidationError("Use auto, pairwise, all or a number 1..4.")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        metric = attrs.get("metric", getattr(self.instance, "metric", ""))
        granularity = attrs.get("granularity", getattr(self.instance, "granularity", "hour"))
        dimension = attrs.get("dimension", getattr(self.instance, "dimension", "total"))
        if metric in KPIS and granularity == "native":
            raise serializers.ValidationError({"granularity": ["Built-in KPIs use minute, hour or day."]})
        if metric not in KPIS and granularity != "native":
            attrs["granularity"] = "native"  # a client metric is evaluated at the cadence it is sent
        if dimension == "total":
            attrs["value"] = ""
        if not metric or len(metric) > 64:
            raise serializers.ValidationError({"metric": ["A built-in KPI or a client metric name (<= 64 chars)."]})
        return attrs


class KnownEventSerializer(serializers.ModelSerializer):
    metrics = serializers.ListField(child=serializers.CharField(max_length=64), required=False)
    dimension = serializers.ChoiceField(choices=["", *DIMENSION_CHOICES], required=False)

    class Meta:
        model = KnownEvent
        fields = ["id", "name", "start", "end", "action", "metrics", "dimension", "value", "created_at"]
        read_only_fields = ["created_at"]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        start = attrs.get("start", getattr(self.instance, "start", None))
        end = attrs.get("end", getattr(self.instance, "end", None))
        if start and end and start >= end:
            raise serializers.ValidationError({"end": ["'end' must be after 'start'."]})
        return attrs


class _ListCreate(APIView):
    required_scopes = CONFIG_SCOPES
    serializer_class: type[serializers.ModelSerializer]
    model: Any

    def get(self, request: Request) -> Response:
        return Response(self.serializer_class(self.queryset(), many=True).data)

    def post(self, request: Request) -> Response:
        serializer = self.serializer_class(data=request.data)
        serializer.is_valid(raise_exception=True)
        self.check_unique(serializer.validated_data)
        return Response(self.serializer_class(serializer.save()).data, status=status.HTTP_201_CREATED)

    def queryset(self) -> Any:
        return self.model.objects.all()

    def check_unique(self, data: dict[str, Any], exclude: int | None = None) -> None:
        pass


class _Detail(APIView):
    required_scopes = CONFIG_SCOPES
    serializer_class: type[serializers.ModelSerializer]
    model: Any

    def get(self, request: Request, pk: int) -> Response:
        return Response(self.serializer_class(get_object_or_404(self.model, pk=pk)).data)

    def patch(self, request: Request, pk: int) -> Response:
        obj = get_object_or_404(self.model, pk=pk)
        serializer = self.serializer_class(obj, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        return Response(self.serializer_class(serializer.save()).data)

    def delete(self, request: Request, pk: int) -> Response:
        get_object_or_404(self.model, pk=pk).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class _WatchedMixin:
    serializer_class = WatchedSeriesSerializer
    model = WatchedSeries

    def check_unique(self, data: dict[str, Any], exclude: int | None = None) -> None:
        if not {"metric", "dimension", "granularity"} & set(data) and exclude:
            return
        rows = WatchedSeries.objects.filter(metric=data.get("metric"), dimension=data.get("dimension", "total"),
                                            value=data.get("value", ""), granularity=data.get("granularity", "hour"))
        if exclude:
            rows = rows.exclude(pk=exclude)
        if rows.exists():
            raise ValidationError({"metric": ["This series is already watched; change that entry instead."]})


class WatchedSeriesListView(_WatchedMixin, _ListCreate):
    """Watched KPI series (the defaults are created on first use)."""

    @extend_schema(responses=WatchedSeriesSerializer(many=True))
    def get(self, request: Request) -> Response:
        if tenant_section(request._request.tenant, "kpi").watch_defaults:
            services.watched_defaults_ensure()
        return super().get(request)

    @extend_schema(request=WatchedSeriesSerializer, responses={201: WatchedSeriesSerializer})
    def post(self, request: Request) -> Response:
        return super().post(request)


class WatchedSeriesDetailView(_WatchedMixin, _Detail):
    @extend_schema(request=WatchedSeriesSerializer, responses=WatchedSeriesSerializer)
    def patch(self, request: Request, pk: int) -> Response:
        obj = get_object_or_404(WatchedSeries, pk=pk)
        serializer = WatchedSeriesSerializer(obj, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        merged = {f: serializer.validated_data.get(f, getattr(obj, f)) for f in ("metric", "dimension", "value",
                                                                               "granularity")}
        self.check_unique(merged, exclude=obj.pk)
        return Response(WatchedSeriesSerializer(serializer.save(updated_at=timezone.now())).data)


class CalendarListView(_ListCreate):
    """Known events (flash sales, holidays): anomalies inside are muted or marked."""

    serializer_class = KnownEventSerializer
    model = KnownEvent

    @extend_schema(request=KnownEventSerializer, responses={201: KnownEventSerializer})
    def post(self, request: Request) -> Response:
        return super().post(request)


class CalendarDetailView(_Detail):
    serializer_class = KnownEventSerializer
    model = KnownEvent


def _filters(request: Request) -> dict[str, str]:
    return {dim: request.query_params[dim] for dim in DIMENSIONS if request.query_params.get(dim)}


def _metric(request: Request) -> str:
    metric = request.query_params.get("metric", "")
    if metric not in KPIS:
        raise ValidationError({"metric": [f"Use one of {', '.join(KPIS)}."]})
    return metric


class ForecastView(APIView):
    required_scopes = {"GET": "read"}

    @extend_schema(parameters=[
        OpenApiParameter("metric", str, required=True, enum=list(KPIS)),
        OpenApiParameter("granularity", str, enum=["minute", "hour", "day"]),
        OpenApiParameter("horizon", int, description="buckets ahead (default 24 hours / 14 days / 60 minutes)"),
        *[OpenApiParameter(dim, str, description=f"filter on {dim}") for dim in DIMENSIONS],
    ], responses={200: dict})
    def get(self, request: Request) -> Response:
        tenant = request._request.tenant
        metric = _metric(request)
        granularity = request.query_params.get("granularity") or "hour"
        if granularity not in reports.MAX_HORIZON:
            raise ValidationError({"granularity": ["Use minute, hour or day."]})
        raw = request.query_params.get("horizon") or {"minute": "60", "hour": "24", "day": "14"}[granularity]
        if not raw.isdigit() or not 1 <= int(raw) <= reports.MAX_HORIZON[granularity]:
            raise ValidationError({"horizon": [f"A number of buckets, 1..{reports.MAX_HORIZON[granularity]}."]})
        filters = _filters(request)
        cfg = tenant_section(tenant, "kpi")
        result = reports.forecast_points(tenant=tenant, metric=metric, granularity=granularity, horizon=int(raw),
                                         filters=filters, now=timezone.now(), grace=cfg.close_grace_seconds)
        return Response({"metric": metric, "granularity": granularity, "horizon": int(raw), "filters": filters,
                         "timezone": tenant.timezone, **result})


class ExplainView(APIView):
    """Why did a KPI change: contribution of each dimension's values between two windows."""

    required_scopes = {"GET": "read"}

    @extend_schema(parameters=[
        OpenApiParameter("metric", str, required=True, enum=list(KPIS)),
        OpenApiParameter("compare", str, enum=["wow", "dod", "custom"]),
        OpenApiParameter("at", str, description="end of the window (default now)"),
        OpenApiParameter("from", str), OpenApiParameter("to", str),
        OpenApiParameter("baseline_from", str), OpenApiParameter("baseline_to", str),
        OpenApiParameter("by", str, description="comma-separated dimensions (default all)"),
        *[OpenApiParameter(dim, str, description=f"filter on {dim}") for dim in DIMENSIONS],
    ], responses={200: dict})
    def get(self, request: Request) -> Response:
        tenant = request._request.tenant
        tz = tenant.timezone
        params = request.query_params
        metric = _metric(request)
        compare = params.get("compare") or "wow"
        if compare not in ("wow", "dod", "custom"):
            raise ValidationError({"compare": ["Use wow, dod or custom."]})
        span = timedelta(days=7 if compare == "wow" else 1)
        end = parse_moment(params.get("to"), "to", tz=tz) or parse_moment(params.get("at"), "at", tz=tz) \
            or timezone.now()
        start = parse_moment(params.get("from"), "from", tz=tz) or end - span
        if start >= end:
            raise ValidationError({"from": ["'from' must be before 'to'."]})
        if compare == "custom":
            b0 = parse_moment(params.get("baseline_from"), "baseline_from", tz=tz)
            b1 = parse_moment(params.get("baseline_to"), "baseline_to", tz=tz)
            if b0 is None or b1 is None or b0 >= b1:
                raise ValidationError({"baseline_from": ["compare=custom needs baseline_from < baseline_to."]})
            before = (b0, b1)
        else:
            before = (start - span, end - span)
        by = [d for d in (params.get("by") or "").split(",") if d]
        bad = [d for d in by if d not in DIMENSIONS]
        if bad:
            raise ValidationError({"by": [f"Unknown dimensions {bad}; use {', '.join(DIMENSIONS)}."]})
        filters = _filters(request)
        granularity = "hour"  # hour buckets exist for every dimension and follow the tenant's hours
        result = services.change_breakdown(tenant=tenant, metric=metric, granularity=granularity, filters=filters,
                                           after=(start, end), before=before, dimensions=by or None,
                                           top=min(int(params.get("top", "10")) if params.get("top", "10").isdigit()
                                                   else 10, 50))
        return Response({"metric": metric, "compare": compare, "filters": filters, "timezone": tz,
                         "window": {"from": start.isoformat(), "to": end.isoformat()},
                         "baseline": {"from": before[0].isoformat(), "to": before[1].isoformat()}, **result})
