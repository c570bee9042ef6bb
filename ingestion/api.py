"""Events, quarantine: thin views over ingestion.services and selectors."""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import BaseParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from pulse.lib.errors import error_body
from pulse.lib.pagination import keyset_page, page_response
from pulse.lib.params import parse_moment

from .models import Event, Quarantine
from .parsing import ParseError, parse_body
from .services import events_ingest, quarantine_replay


class RawBodyParser(BaseParser):
    """Leaves the body to ingestion.parsing, which knows JSON, arrays, {"events": []} and NDJSON."""

    media_type = "*/*"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        return None


class EventSerializer(serializers.ModelSerializer):
    timestamp = serializers.DateTimeField(source="occurred_at")

    class Meta:
        model = Event
        exclude = ["batch_id", "occurred_at"]


EVENT_FILTERS = ["type", "channel", "campaign", "product_id", "store_id", "customer_id", "order_id"]


class EventsView(APIView):
    required_scopes = {"GET": "read", "POST": "ingest"}
    parser_classes = [RawBodyParser]

    @extend_schema(
        request={"application/json": dict, "application/x-ndjson": str},
        responses={200: dict, 400: dict, 413: dict, 415: dict},
        description="One event, a JSON array, {\"events\": [...]} or NDJSON; up to 10,000 events.",
    )
    def post(self, request: Request) -> Response:
        django_request = request._request
        try:
            raw_events = parse_body(django_request.body, django_request.content_type
                                    if not django_request.META.get("CONTENT_TYPE") else django_request.META["CONTENT_TYPE"])
        except ParseError as exc:
            code = {400: "malformed", 413: "too_large", 415: "unsupported_media_type"}.get(exc.status, "invalid")
            return Response(error_body(code, exc.message), status=exc.status)
        result = events_ingest(tenant=django_request.tenant, raw_events=raw_events, source="api")
        body = result.as_response()
        if result.accepted == 0 and result.duplicates == 0:
            return Response({"error": "invalid", "detail": "No valid event in the request.", **body},
                            status=status.HTTP_400_BAD_REQUEST)
        return Response(body, status=status.HTTP_200_OK)

    @extend_schema(parameters=[OpenApiParameter(name, str) for name in [*EVENT_FILTERS, "from", "to", "cursor", "limit"]],
                   responses=EventSerializer(many=True))
    def get(self, request: Request) -> Response:
        tz = request._request.tenant.timezone
        queryset = Event.objects.all()
        params = request.query_params
        for name in EVENT_FILTERS:
            if params.get(name):
                queryset = queryset.filter(**{name: params[name].strip().lower() if name == "type" else params[name]})
        if (start := parse_moment(params.get("from"), "from", tz=tz)) is not None:
            queryset = queryset.filter(occurred_at__gte=start)
        if (end := parse_moment(params.get("to"), "to", tz=tz, end_of_day=True)) is not None:
            queryset = queryset.filter(occurred_at__lte=end)
        rows, next_cursor = keyset_page(queryset, request, time_field="occurred_at")
        return Response(page_response(request, EventSerializer(rows, many=True).data, next_cursor))


class QuarantineSerializer(serializers.ModelSerializer):
    class Meta:
        model = Quarantine
        fields = ["id", "received_at", "source", "reference", "index", "event_id", "raw", "errors", "status",
                  "replayed_at"]


class QuarantineListView(APIView):
    required_scopes = {"GET": "read"}

    @extend_schema(parameters=[OpenApiParameter(n, str) for n in ["status", "source", "from", "to", "cursor", "limit"]],
                   responses=QuarantineSerializer(many=True))
    def get(self, request: Request) -> Response:
        tz = request._request.tenant.timezone
        queryset = Quarantine.objects.all()
        params = request.query_params
        for name in ("status", "source"):
            if params.get(name):
                queryset = queryset.filter(**{name: params[name]})
        if (start := parse_moment(params.get("from"), "from", tz=tz)) is not None:
            queryset = queryset.filter(received_at__gte=start)
        if (end := parse_moment(params.get("to"), "to", tz=tz, end_of_day=True)) is not None:
            queryset = queryset.filter(received_at__lte=end)
        rows, next_cursor = keyset_page(queryset, request, time_field="received_at")
        return Response(page_response(request, QuarantineSerializer(rows, many=True).data, next_cursor))


class ReplaySerializer(serializers.Serializer):
    event = serializers.JSONField(required=False, help_text="a corrected event; default: the stored one")


class QuarantineReplayView(APIView):
    required_scopes = {"POST": "ingest"}

    @extend_schema(request=ReplaySerializer, responses={200: dict, 400: dict, 409: dict})
    def post(self, request: Request, pk: int) -> Response:
        item = get_object_or_404(Quarantine, pk=pk)
        if item.status != Quarantine.Status.OPEN:
            return Response(error_body("conflict", f"This event was already {item.status}."), status=409)
        serializer = ReplaySerializer(data=request.data if isinstance(request.data, dict) else {})
        serializer.is_valid(raise_exception=True)
        result = quarantine_replay(tenant=request._request.tenant, item=item,
                                   corrected=serializer.validated_data.get("event"))
        body = result.as_response()
        ok = bool(result.accepted or result.duplicates)
        return Response(body if ok else {"error": "invalid", "detail": "Still invalid.", **body},
                        status=status.HTTP_200_OK if ok else status.HTTP_400_BAD_REQUEST)
