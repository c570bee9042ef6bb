"""Alert channels, policies, alerts and snoozes. Thin: validation in serializers, work in services.

Config writes need `admin`, reads `read`; snoozing is triage work (`triage`). Channel secrets (the webhook
secret, the Slack webhook URL) are shown in full only in the answer that creates the channel."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from . import selectors, services
from .models import SEVERITIES, Alert, Channel, Delivery, Policy, Snooze
from .policies import validate_filters, validate_quiet_hours
from .transports import ChannelConfigError, transport_class

CONFIG_SCOPES = {"GET": "read", "POST": "admin", "PUT": "admin", "PATCH": "admin", "DELETE": "admin"}
ANOMALY_KINDS = ["transaction", "kpi", "stock", "drift"]


def _config_error(exc: ChannelConfigError) -> serializers.ValidationError:
    return serializers.ValidationError(exc.errors)


# ----------------------------------------------------------------------------- channels

class ChannelSerializer(serializers.ModelSerializer):
    config = serializers.SerializerMethodField()

    class Meta:
        model = Channel
        fields = ["id", "kind", "name", "config", "is_enabled", "disabled_reason", "disabled_at", "created_at",
                  "updated_at"]

    def get_config(self, channel: Channel) -> dict[str, Any]:
        if self.context.get("reveal_secrets"):
            return channel.config
        return transport_class(channel.kind).masked_config(channel.config)


class ChannelWriteSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=Channel.Kind.choices, required=False)
    name = serializers.CharField(max_length=100, required=False)
    config = serializers.JSONField(required=False)
    is_enabled = serializers.BooleanField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if self.instance is None:
            missing = {f: ["This field is required."] for f in ("kind", "name", "config") if f not in attrs}
            if missing:
                raise serializers.ValidationError(missing)
        elif "kind" in attrs and attrs["kind"] != self.instance.kind:
            raise serializers.ValidationError({"kind": ["The kind of a channel cannot change; create a new one."]})
        return attrs


class ChannelListView(APIView):
    required_scopes = CONFIG_SCOPES

    @extend_schema(responses=ChannelSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(ChannelSerializer(selectors.channel_list(), many=True).data)

    @extend_schema(request=ChannelWriteSerializer, responses={201: ChannelSerializer})
    def post(self, request: Request) -> Response:
        serializer = ChannelWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            channel = services.channel_create(kind=data["kind"], name=data["name"], config=data["config"],
                                              is_enabled=data.get("is_enabled", True))
        except ChannelConfigError as exc:
            raise _config_error(exc) from exc
        # The only answer that shows the secret in full: store it now.
        body = ChannelSerializer(channel, context={"reveal_secrets": True}).data
        return Response(body, status=status.HTTP_201_CREATED)


class ChannelDetailView(APIView):
    required_scopes = CONFIG_SCOPES

    @extend_schema(responses=ChannelSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(ChannelSerializer(get_object_or_404(Channel, pk=pk)).data)

    @extend_schema(request=ChannelWriteSerializer, responses=ChannelSerializer)
    def patch(self, request: Request, pk: int) -> Response:
        channel = get_object_or_404(Channel, pk=pk)
        serializer = ChannelWriteSerializer(channel, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            services.channel_update(channel=channel, name=data.get("name"), config=data.get("config"),
                                    is_enabled=data.get("is_enabled"))
        except ChannelConfigError as exc:
            raise _config_error(exc) from exc
        return Response(ChannelSerializer(channel).data)

    put = patch

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        get_object_or_404(Channel, pk=pk).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class ChannelTestView(APIView):
    """Send a test notification now and report what happened."""

    required_scopes = {"POST": "admin"}

    @extend_schema(request=None, responses={200: dict})
    def post(self, request: Request, pk: int) -> Response:
        channel = get_object_or_404(Channel, pk=pk)
        delivery = services.channel_test(channel=channel)
        return Response({"ok": delivery.status == Delivery.Status.SENT, "delivery": DeliverySerializer(delivery).data})


# ----------------------------------------------------------------------------- policies

class PolicySerializer(serializers.ModelSerializer):
    channels = serializers.PrimaryKeyRelatedField(many=True, queryset=Channel.objects.all(), required=False)
    kinds = serializers.ListField(child=serializers.ChoiceField(choices=ANOMALY_KINDS), required=False)
    order_statuses = serializers.ListField(child=serializers.CharField(max_length=32), required=False)
    filters = serializers.JSONField(required=False)
    quiet_hours = serializers.JSONField(required=False, allow_null=True)
    cooldown_seconds = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=7 * 24 * 3600)
    digest_minutes = serializers.IntegerField(required=False, min_value=0, max_value=24 * 60)

    class Meta:
        model = Policy
        fields = ["id", "name", "channels", "enabled", "notify_anomalies", "min_severity", "kinds", "filters",
                  "quiet_hours", "cooldown_seconds", "digest_minutes", "notify_resolved", "notify_order_status",
                  "order_statuses", "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]

    def validate_filters(self, value: Any) -> Any:
        errors = validate_filters(value)
        if errors:
            raise serializers.ValidationError(errors)
        return value or {}

    def validate_quiet_hours(self, value: Any) -> Any:
        errors = validate_quiet_hours(value)
        if errors:
            raise serializers.ValidationError(errors)
        return value or None


class PolicyListView(APIView):
    required_scopes = CONFIG_SCOPES

    @extend_schema(responses=PolicySerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(PolicySerializer(selectors.policy_list(), many=True).data)

    @extend_schema(request=PolicySerializer, responses={201: PolicySerializer})
    def post(self, request: Request) -> Response:
        serializer = PolicySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        policy = services.policy_create(**serializer.validated_data)
        return Response(PolicySerializer(policy).data, status=status.HTTP_201_CREATED)


class PolicyDetailView(APIView):
    required_scopes = CONFIG_SCOPES

    @extend_schema(responses=PolicySerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(PolicySerializer(get_object_or_404(Policy, pk=pk)).data)

    @extend_schema(request=PolicySerializer, responses=PolicySerializer)
    def patch(self, request: Request, pk: int) -> Response:
        policy = get_object_or_404(Policy, pk=pk)
        serializer = PolicySerializer(policy, data=request.data, partial=request.method == "PATCH")
        serializer.is_valid(raise_exception=True)
        services.policy_update(policy=policy, **serializer.validated_data)
        return Response(PolicySerializer(policy).data)

    put = patch

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        get_object_or_404(Policy, pk=pk).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


# ----------------------------------------------------------------------------- alerts

class DeliverySerializer(serializers.ModelSerializer):
    channel_name = serializers.CharField(source="channel.name", read_only=True)
    channel_kind = serializers.CharField(source="channel.kind", read_only=True)

    class Meta:
        model = Delivery
        fields = ["id", "key", "channel", "channel_name", "channel_kind", "kind", "event", "status", "hold_reason",
                  "scheduled_for", "digest", "attempts", "response_code", "error", "duration_ms", "created_at",
                  "sent_at"]


class AlertSerializer(serializers.ModelSerializer):
    deliveries = serializers.SerializerMethodField()
    last_anomaly = serializers.PrimaryKeyRelatedField(read_only=True)
    first_anomaly = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta:
        model = Alert
        fields = ["id", "fingerprint", "status", "title", "kind", "metric", "entity", "severity", "peak_severity",
                  "count", "suppressed_count", "first_anomaly", "last_anomaly", "latest", "opened_at",
                  "last_seen_at", "resolved_at", "deliveries"]

    def get_deliveries(self, alert: Alert) -> list[dict[str, Any]]:
        rows = list(alert.deliveries.all())[: selectors.DELIVERIES_PER_ALERT]
        return DeliverySerializer(rows, many=True).data


class AlertFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=Alert.Status.choices, required=False)
    severity = serializers.ChoiceField(choices=SEVERITIES, required=False, help_text="at least this peak severity")
    kind = serializers.ChoiceField(choices=ANOMALY_KINDS, required=False)
    fingerprint = serializers.CharField(required=False, max_length=200)
    metric = serializers.CharField(required=False, max_length=64)
    entity = serializers.CharField(required=False, max_length=200)
    channel = serializers.IntegerField(required=False, min_value=1)
    to = serializers.DateTimeField(required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["from"] = serializers.DateTimeField(required=False)  # `from` is a Python keyword


class NewestFirst(CursorPagination):
    ordering = ("-id",)
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 200


ALERT_FILTER_PARAMS = [OpenApiParameter(name, str, required=False) for name in
                       ("status", "severity", "kind", "fingerprint", "metric", "entity", "channel", "from", "to",
                        "cursor", "limit")]


class AlertListView(APIView):
    """Alerts newest first, each with its delivery attempts (latest 20)."""

    required_scopes = {"GET": "read"}

    @extend_schema(parameters=ALERT_FILTER_PARAMS, responses=AlertSerializer(many=True))
    def get(self, request: Request) -> Response:
        filters = AlertFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        paginator = NewestFirst()
        page = paginator.paginate_queryset(selectors.alert_list(filters=filters.validated_data), request, view=self)
        return paginator.get_paginated_response(AlertSerializer(page, many=True).data)


class AlertDetailView(APIView):
    required_scopes = {"GET": "read"}

    @extend_schema(responses=AlertSerializer)
    def get(self, request: Request, pk: int) -> Response:
        alert = get_object_or_404(selectors.alert_list(filters={}), pk=pk)
        return Response(AlertSerializer(alert).data)


# ----------------------------------------------------------------------------- snoozes

class SnoozeSerializer(serializers.ModelSerializer):
    minutes = serializers.IntegerField(write_only=True, required=False, min_value=1, max_value=90 * 24 * 60)
    until = serializers.DateTimeField(required=False)
    active = serializers.SerializerMethodField()

    class Meta:
        model = Snooze
        fields = ["id", "fingerprint", "entity", "until", "minutes", "reason", "created_by", "created_at",
                  "cancelled_at", "active"]
        read_only_fields = ["id", "created_by", "created_at", "cancelled_at"]

    def get_active(self, snooze: Snooze) -> bool:
        return snooze.cancelled_at is None and snooze.until > timezone.now()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs.get("fingerprint") and not attrs.get("entity") and not self.context.get("fingerprint"):
            raise serializers.ValidationError({"fingerprint": ["Give a fingerprint or an entity to snooze."]})
        minutes = attrs.pop("minutes", None)
        if "until" not in attrs:
            if minutes is None:
                raise serializers.ValidationError({"until": ["Give `until` (a time) or `minutes`."]})
            attrs["until"] = timezone.now() + timedelta(minutes=minutes)
        elif attrs["until"] <= timezone.now():
            raise serializers.ValidationError({"until": ["Must be in the future."]})
        return attrs


class SnoozeListView(APIView):
    required_scopes = {"GET": "read", "POST": "triage"}

    @extend_schema(parameters=[OpenApiParameter("all", bool, required=False)], responses=SnoozeSerializer(many=True))
    def get(self, request: Request) -> Response:
        include_inactive = request.query_params.get("all", "").lower() in {"1", "true", "yes"}
        rows = selectors.snooze_list(include_inactive=include_inactive, now=timezone.now())[:500]
        return Response(SnoozeSerializer(rows, many=True).data)

    @extend_schema(request=SnoozeSerializer, responses={201: SnoozeSerializer})
    def post(self, request: Request) -> Response:
        serializer = SnoozeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        snooze = services.snooze_create(created_by=str(request.user), **serializer.validated_data)
        return Response(SnoozeSerializer(snooze).data, status=status.HTTP_201_CREATED)


class SnoozeDetailView(APIView):
    required_scopes = {"GET": "read", "DELETE": "triage"}

    @extend_schema(responses=SnoozeSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(SnoozeSerializer(get_object_or_404(Snooze, pk=pk)).data)

    @extend_schema(responses=SnoozeSerializer)
    def delete(self, request: Request, pk: int) -> Response:
        """Ends the snooze now (kept for the record)."""
        snooze = services.snooze_cancel(snooze=get_object_or_404(Snooze, pk=pk))
        return Response(SnoozeSerializer(snooze).data)


class AlertSnoozeView(APIView):
    """Snooze an alert's fingerprint: `{"minutes": 60}` or `{"until": ...}`, optional `reason`."""

    required_scopes = {"POST": "triage"}

    @extend_schema(request=SnoozeSerializer, responses={201: SnoozeSerializer})
    def post(self, request: Request, pk: int) -> Response:
        alert = get_object_or_404(Alert, pk=pk)
        serializer = SnoozeSerializer(data=request.data, context={"fingerprint": alert.fingerprint})
        serializer.is_valid(raise_exception=True)
        data = {k: v for k, v in serializer.validated_data.items() if k not in ("fingerprint", "entity")}
        snooze = services.snooze_create(created_by=str(request.user), fingerprint=alert.fingerprint, **data)
        return Response(SnoozeSerializer(snooze).data, status=status.HTTP_201_CREATED)
