"""Events, quarantine: thin views over ingestion.services and selectors."""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import BaseParser, JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from pulse.lib.errors import error_body
from pulse.lib.pagination import keyset_page, page_response
from pulse.lib.params import parse_moment

from .models import Event, ImportSource, Quarantine, Upload
from .parsing import ParseError, parse_body
from .selectors import order_tracking, upload_rejections
from .services import events_ingest, quarantine_replay
from .uploads import UploadError, max_upload_bytes, upload_store


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
        responses={200: dict, 400: dict, 413: dict, 415: dict, 429: dict},
        description="One event, a JSON array, {\"events\": [...]} or NDJSON; up to 10,000 events.",
    )
    def post(self, request: Request) -> Response:
        from .usage import api_call_count

        django_request = request._request
        api_call_count(django_request)
        if (refused := _quota_response(django_request.tenant)) is not None:
            return refused
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


# ------------------------------------------------------------------ uploads


def _quota_response(tenant: Any) -> Response | None:
    from .usage import events_quota_exceeded

    message = events_quota_exceeded(tenant)
    return Response(error_body("quota_exceeded", message), status=429) if message else None


class UploadSerializer(serializers.ModelSerializer):
    class Meta:
        model = Upload
        fields = ["id", "status", "source", "import_source", "filename", "format", "compressed", "size_bytes",
                  "sha256", "rows_done", "rows_total", "rows_accepted", "rows_duplicates", "rows_rejected",
                  "bytes_done", "error", "created_at", "started_at", "updated_at", "finished_at"]


class UploadsView(APIView):
    required_scopes = {"GET": "read", "POST": "ingest"}
    parser_classes = [RawBodyParser]

    @extend_schema(
        request={"multipart/form-data": {"type": "object", "properties": {"file": {"type": "string",
                                                                                    "format": "binary"}}},
                 "text/csv": str, "application/x-ndjson": str},
        parameters=[OpenApiParameter("format", str, description="csv or ndjson when the name does not say"),
                    OpenApiParameter("filename", str, description="name of a raw-body upload")],
        responses={202: dict, 400: dict, 413: dict, 415: dict, 429: dict},
        description="A CSV or NDJSON file (optionally gzip), as multipart field `file` or as the raw body.",
    )
    def post(self, request: Request) -> Response:
        from .usage import api_call_count

        django_request = request._request
        api_call_count(django_request)
        tenant = django_request.tenant
        if (refused := _quota_response(tenant)) is not None:
            return refused
        content_type = django_request.META.get("CONTENT_TYPE", "")
        try:
            declared = int(django_request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > max_upload_bytes():
            return Response(error_body("too_large", f"The file is larger than the limit of {max_upload_bytes():,} "
                                                    "bytes."), status=413)
        if content_type.lower().startswith("multipart/form-data"):
            # Django spools a multipart file to a temporary file above FILE_UPLOAD_MAX_MEMORY_SIZE.
            uploaded = django_request.FILES.get("file")
            if uploaded is None:
                return Response(error_body("invalid", "Send the file in a multipart field named 'file'."), status=400)
            stream, filename, file_type = uploaded, uploaded.name, uploaded.content_type
        else:
            stream, filename, file_type = django_request, request.query_params.get("filename", ""), content_type
        try:
            upload = upload_store(stream=stream, filename=filename, content_type=file_type,
                                  format=request.query_params.get("format"))
        except UploadError as exc:
            return Response(error_body(exc.code, exc.message), status=exc.status)
        return Response({"id": upload.pk, "status": upload.status, "url": f"/api/v1/uploads/{upload.pk}"},
                        status=status.HTTP_202_ACCEPTED)

    @extend_schema(parameters=[OpenApiParameter(n, str) for n in ["status", "cursor", "limit"]],
                   responses=UploadSerializer(many=True))
    def get(self, request: Request) -> Response:
        queryset = Upload.objects.all()
        if request.query_params.get("status"):
            queryset = queryset.filter(status=request.query_params["status"])
        rows, next_cursor = keyset_page(queryset, request, time_field="created_at")
        return Response(page_response(request, UploadSerializer(rows, many=True).data, next_cursor))


class UploadDetailView(APIView):
    required_scopes = {"GET": "read"}

    @extend_schema(parameters=[OpenApiParameter("rejected_after", int, description="row number to continue after"),
                               OpenApiParameter("rejected_limit", int, description="rejected rows shown (≤1000)")],
                   responses={200: dict, 404: dict})
    def get(self, request: Request, pk: int) -> Response:
        upload = get_object_or_404(Upload, pk=pk)
        try:
            after = int(request.query_params.get("rejected_after", 0))
            limit = int(request.query_params.get("rejected_limit", 100))
        except ValueError:
            return Response(error_body("invalid", "rejected_after and rejected_limit must be integers."), status=400)
        rejected, next_after = upload_rejections(upload=upload, after_row=after, limit=limit)
        return Response({**UploadSerializer(upload).data, "rejected": rejected, "rejected_next_after": next_after})


# ------------------------------------------------------------------ orders


class OrderTrackingView(APIView):
    required_scopes = {"GET": "read"}

    @extend_schema(responses={200: dict, 404: dict})
    def get(self, request: Request, order_id: str) -> Response:
        tracking = order_tracking(order_id=order_id)
        if tracking is None:
            return Response(error_body("not_found", "No order with this id."), status=404)
        return Response(tracking)


# ------------------------------------------------------------------ import sources


class ImportSourceSerializer(serializers.ModelSerializer):
    class Meta:
        model = ImportSource
        fields = ["id", "name", "kind", "location", "pattern", "format", "enabled", "poll_interval_seconds",
                  "created_at", "last_polled_at", "last_error", "files_imported"]
        read_only_fields = ["created_at", "last_polled_at", "last_error", "files_imported"]
        extra_kwargs = {"poll_interval_seconds": {"min_value": 60, "max_value": 7 * 86400}}

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        from .imports import ImportConfigError, import_source_check

        instance = self.instance
        kind = attrs.get("kind", getattr(instance, "kind", None))
        location = attrs.get("location", getattr(instance, "location", ""))
        try:
            import_source_check(kind=kind, location=location, format=attrs.get("format", getattr(instance, "format",
                                                                                                 "auto")))
        except ImportConfigError as exc:
            raise serializers.ValidationError({"location": [str(exc)]}) from exc
        return attrs


class ImportSourceListView(APIView):
    required_scopes = {"GET": "admin", "POST": "admin"}
    parser_classes = [JSONParser]

    @extend_schema(responses=ImportSourceSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response({"results": ImportSourceSerializer(ImportSource.objects.all()[:500], many=True).data})

    @extend_schema(request=ImportSourceSerializer, responses={201: ImportSourceSerializer})
    def post(self, request: Request) -> Response:
        serializer = ImportSourceSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        serializer.save()
        return Response(serializer.data, status=status.HTTP_201_CREATED)


class ImportSourceDetailView(APIView):
    required_scopes = {"GET": "admin", "PATCH": "admin", "DELETE": "admin"}
    parser_classes = [JSONParser]

    @extend_schema(responses=ImportSourceSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(ImportSourceSerializer(get_object_or_404(ImportSource, pk=pk)).data)

    @extend_schema(request=ImportSourceSerializer, responses=ImportSourceSerializer)
    def patch(self, request: Request, pk: int) -> Response:
        serializer = ImportSourceSerializer(get_object_or_404(ImportSource, pk=pk), data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        serializer.save()
        return Response(serializer.data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        get_object_or_404(ImportSource, pk=pk).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)
