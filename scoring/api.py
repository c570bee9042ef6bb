"""KPI series, anomalies, rules (CRUD, versions, dry-run) and the fraud-check: thin views over
selectors and services."""

from __future__ import annotations

import time
from dataclasses import asdict
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

from pulse.lib.errors import error_body
from pulse.lib.pagination import keyset_page, page_response
from pulse.lib.params import parse_moment
from tenants.config import tenant_section

from .models import Anomaly, MetricPoint, Rule, RuleVersion
from .rollups import DIMENSIONS, GRANULARITIES, KPIS
from .selectors import anomalies_filter, kpi_series, metric_series, rule_versions, rules_list


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


# ---------------------------------------------------------------------------------------------
# anomalies


class AnomalySerializer(serializers.ModelSerializer):
    class Meta:
        model = Anomaly
        fields = ["id", "kind", "occurred_at", "detected_at", "metric", "dimensions", "entity", "event_ids", "score",
                  "severity", "direction", "expected", "observed", "impact", "reasons", "detectors", "decision",
                  "root_cause", "fingerprint", "status", "feedback"]


def _choice(params: Any, name: str, choices: Any) -> str | None:
    value = params.get(name) or None
    allowed = [c for c, _ in choices]
    if value is not None and value not in allowed:
        raise ValidationError({name: [f"Use one of {', '.join(allowed)}."]})
    return value


ANOMALY_FILTERS = ["from", "to", "kind", "severity", "detector", "metric", "entity", "status", "q", "cursor", "limit"]


class AnomaliesView(APIView):
    """Anomalies of every kind, newest first (detected_at), with cursor pagination."""

    required_scopes = {"GET": "read"}

    @extend_schema(parameters=[OpenApiParameter(n, str) for n in ANOMALY_FILTERS],
                   responses=AnomalySerializer(many=True))
    def get(self, request: Request) -> Response:
        params = request.query_params
        tz = request._request.tenant.timezone
        start = parse_moment(params.get("from"), "from", tz=tz)
        end = parse_moment(params.get("to"), "to", tz=tz, end_of_day=True)
        rows = anomalies_filter(
            start=start, end=end, kind=_choice(params, "kind", Anomaly.Kind.choices),
            severity=_choice(params, "severity", Anomaly.Severity.choices), detector=params.get("detector") or None,
            metric=params.get("metric") or None, entity=params.get("entity") or None,
            status=_choice(params, "status", Anomaly.Status.choices), q=params.get("q") or None)
        page, next_cursor = keyset_page(rows, request, time_field="detected_at")
        return Response(page_response(request, AnomalySerializer(page, many=True).data, next_cursor))


class AnomalyDetailView(APIView):
    required_scopes = {"GET": "read"}

    @extend_schema(responses=AnomalySerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(AnomalySerializer(get_object_or_404(Anomaly, pk=pk)).data)


# ---------------------------------------------------------------------------------------------
# rules


class RuleSerializer(serializers.ModelSerializer):
    class Meta:
        model = Rule
        fields = ["id", "name", "description", "condition", "score", "severity", "action", "enabled", "version",
                  "created_at", "updated_at"]


class RuleVersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = RuleVersion
        fields = ["id", "rule_name", "version", "change", "definition", "changed_by", "created_at"]


def _who(request: Request) -> str:
    user = request.user
    return str(getattr(user, "name", "") or getattr(user, "username", "") or user)[:200]


def _invalid(errors: dict[str, Any]) -> Response:
    return Response(error_body("invalid", "The rule is invalid.", errors), status=status.HTTP_400_BAD_REQUEST)


class RulesView(APIView):
    """The tenant's rules (the default set is created on first use). Admin scope to create."""

    required_scopes = {"GET": "read", "POST": "admin"}

    @extend_schema(responses=RuleSerializer(many=True))
    def get(self, request: Request) -> Response:
        from .services import rules_ensure_defaults

        rules_ensure_defaults(tenant=request._request.tenant)
        return Response({"results": RuleSerializer(rules_list(), many=True).data})

    @extend_schema(request=dict, responses={201: RuleSerializer, 400: dict})
    def post(self, request: Request) -> Response:
        from .services import RuleError, rule_create, rules_ensure_defaults

        rules_ensure_defaults(tenant=request._request.tenant)
        try:
            rule = rule_create(definition=request.data, changed_by=_who(request))
        except RuleError as exc:
            return _invalid(exc.errors)
        return Response(RuleSerializer(rule).data, status=status.HTTP_201_CREATED)


class RuleDetailView(APIView):
    required_scopes = {"GET": "read", "PUT": "admin", "PATCH": "admin", "DELETE": "admin"}

    @extend_schema(responses=RuleSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(RuleSerializer(get_object_or_404(Rule, pk=pk)).data)

    def _update(self, request: Request, pk: int, partial: bool) -> Response:
        from .services import RuleError, rule_update

        rule = get_object_or_404(Rule, pk=pk)
        try:
            rule = rule_update(rule=rule, changes=request.data, changed_by=_who(request), partial=partial)
        except RuleError as exc:
            return _invalid(exc.errors)
        return Response(RuleSerializer(rule).data)

    @extend_schema(request=dict, responses={200: RuleSerializer, 400: dict})
    def put(self, request: Request, pk: int) -> Response:
        return self._update(request, pk, partial=False)

    @extend_schema(request=dict, responses={200: RuleSerializer, 400: dict})
    def patch(self, request: Request, pk: int) -> Response:
        return self._update(request, pk, partial=True)

    def delete(self, request: Request, pk: int) -> Response:
        from .services import rule_delete

        rule_delete(rule=get_object_or_404(Rule, pk=pk), changed_by=_who(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class RuleVersionsView(APIView):
    required_scopes = {"GET": "read"}

    @extend_schema(responses=RuleVersionSerializer(many=True))
    def get(self, request: Request, pk: int) -> Response:
        rule = get_object_or_404(Rule, pk=pk)
        return Response({"results": RuleVersionSerializer(rule_versions(rule=rule), many=True).data})


class RuleDryRunView(APIView):
    """How many of the last N days' payments/orders a rule would have flagged (nothing is stored)."""

    required_scopes = {"POST": "admin"}
    MAX_DAYS = 90

    @extend_schema(request=dict, responses={200: dict, 400: dict})
    def post(self, request: Request) -> Response:
        from .services import DryRunError, rule_dry_run

        body = request.data if isinstance(request.data, dict) else {}
        days = body.get("days", 7)
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= self.MAX_DAYS:
            return _invalid({"days": [f"an integer between 1 and {self.MAX_DAYS}"]})
        if "rule" not in body:
            return _invalid({"rule": ["required: the rule to try"]})
        try:
            report = rule_dry_run(tenant=request._request.tenant, rule=body["rule"], days=days)
        except DryRunError as exc:
            return _invalid(exc.errors)
        return Response(report)


# ---------------------------------------------------------------------------------------------
# fraud-check


class FraudCheckView(APIView):
    """One payment in, {risk_score, decision, reasons, detectors, related_event_ids} out (related: the
    earlier payments of the customer, IP or device that the flagging signal counted, when flagged);
    the payment is stored as an event. `Server-Timing` reports the time spent in the view (auth
    included) and in scoring."""

    required_scopes = {"POST": "ingest"}

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        response = super().dispatch(request, *args, **kwargs)
        timing = getattr(self, "_timings", {})
        parts = [f"{name};dur={value:.3f}" for name, value in timing.items() if name != "total"]
        parts.append(f"app;dur={(time.perf_counter() - started) * 1e3:.3f}")
        response["Server-Timing"] = ", ".join(parts)
        return response

    @extend_schema(request=dict, responses={200: dict, 400: dict})
    def post(self, request: Request) -> Response:
        from .pipeline import StateNotReady
        from .services import fraud_check

        try:
            outcome = fraud_check(tenant=request._request.tenant, payload=request.data)
        except StateNotReady:
            return Response(error_body("unavailable", "This shop's scoring state is being rebuilt; retry in a few "
                                       "seconds."), status=status.HTTP_503_SERVICE_UNAVAILABLE,
                            headers={"Retry-After": "5"})
        self._timings = outcome.timings
        if outcome.errors is not None:
            return Response(error_body("invalid", "The payment is invalid.", outcome.errors),
                            status=status.HTTP_400_BAD_REQUEST)
        return Response(outcome.body)
