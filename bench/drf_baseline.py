"""The endpoint a team would write first, for the throughput comparison only (never in the app): a DRF
ModelSerializer validating each event and saving it with one INSERT per event (inside one transaction
per request, which is already kinder than autocommit per row). Mounted at /bench/drf-events next to
the real URL conf."""

from __future__ import annotations

from django.db import models, transaction
from django.urls import include, path
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView


class NaiveEvent(models.Model):
    """The same partitioned `events` table, mapped the obvious way."""

    id = models.BigAutoField(primary_key=True)
    batch_id = models.BigIntegerField(default=0)
    event_id = models.CharField(max_length=128)
    type = models.CharField(max_length=16)
    occurred_at = models.DateTimeField()
    customer_id = models.CharField(max_length=128, null=True, blank=True)
    session_id = models.CharField(max_length=128, null=True, blank=True)
    order_id = models.CharField(max_length=128, null=True, blank=True)
    channel = models.CharField(max_length=128, null=True, blank=True)
    campaign = models.CharField(max_length=128, null=True, blank=True)
    product_id = models.CharField(max_length=128, null=True, blank=True)
    store_id = models.CharField(max_length=128, null=True, blank=True)
    country = models.CharField(max_length=2, null=True, blank=True)
    amount = models.DecimalField(max_digits=18, decimal_places=4, null=True, blank=True)
    currency = models.CharField(max_length=3, null=True, blank=True)
    payment_method = models.CharField(max_length=128, null=True, blank=True)

    class Meta:
        app_label = "ingestion"
        managed = False
        db_table = "events"


class NaiveEventSerializer(serializers.ModelSerializer):
    timestamp = serializers.DateTimeField(source="occurred_at")
    event_id = serializers.CharField(required=False)

    class Meta:
        model = NaiveEvent
        exclude = ["id", "batch_id", "occurred_at"]


class NaiveEventsView(APIView):
    required_scopes = {"POST": "ingest"}

    def post(self, request):  # type: ignore[no-untyped-def]
        import uuid

        data = request.data if isinstance(request.data, list) else [request.data]
        prefix = uuid.uuid4().hex
        for i, item in enumerate(data):
            item.setdefault("event_id", f"{prefix}-{i}")
        serializer = NaiveEventSerializer(data=data, many=True)
        serializer.is_valid(raise_exception=True)
        with transaction.atomic():
            serializer.save()  # ListSerializer.create: one INSERT per event
        return Response({"accepted": len(data)})


urlpatterns = [
    path("bench/drf-events", NaiveEventsView.as_view()),
    path("", include("pulse.urls")),
]
