"""Ingestion storage, per tenant schema.

Events live in a PostgreSQL table partitioned by month (created by migration 0002, written with COPY);
`Event` maps it read-only for queries. `EventKey` makes ingestion idempotent per tenant: an event id
is stored once, whatever the entry point (API, upload, Kafka, import). `EventBatch` is the outbox:
it commits with its events and is handed to scoring after commit; a sweeper re-enqueues any batch a
dead worker left behind."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class EventBatch(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        PROCESSING = "processing"
        DONE = "done"
        FAILED = "failed"

    source = models.CharField(max_length=16)  # api, upload, kafka, import, fraud_check, replay
    created_at = models.DateTimeField(default=timezone.now)
    accepted = models.PositiveIntegerField(default=0)
    duplicates = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    first_occurred_at = models.DateTimeField(null=True)
    last_occurred_at = models.DateTimeField(null=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    consumers_done = models.JSONField(default=list, help_text="batch consumers that have committed their work")
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True)
    processed_at = models.DateTimeField(null=True)

    class Meta:
        indexes = [models.Index(fields=["status", "created_at"], name="batch_status_created")]


class EventKey(models.Model):
    event_id = models.CharField(max_length=128, primary_key=True)
    batch_id = models.BigIntegerField()


class Event(models.Model):
    """Read-only view of the partitioned `events` table (see migration 0002)."""

    id = models.BigIntegerField(primary_key=True)
    batch_id = models.BigIntegerField()
    received_at = models.DateTimeField()
    event_id = models.CharField(max_length=128)
    type = models.CharField(max_length=16)
    occurred_at = models.DateTimeField()
    customer_id = models.CharField(max_length=128, null=True)
    session_id = models.CharField(max_length=128, null=True)
    order_id = models.CharField(max_length=128, null=True)
    channel = models.CharField(max_length=128, null=True)
    campaign = models.CharField(max_length=128, null=True)
    product_id = models.CharField(max_length=128, null=True)
    store_id = models.CharField(max_length=128, null=True)
    country = models.CharField(max_length=2, null=True)
    amount = models.DecimalField(max_digits=18, decimal_places=4, null=True)
    currency = models.CharField(max_length=3, null=True)
    quantity = models.BigIntegerField(null=True)
    status = models.CharField(max_length=32, null=True)
    ip = models.CharField(max_length=64, null=True)
    device_id = models.CharField(max_length=128, null=True)
    payment_method = models.CharField(max_length=128, null=True)
    email_hash = models.CharField(max_length=128, null=True)
    stock_level = models.BigIntegerField(null=True)
    threshold = models.BigIntegerField(null=True)
    metric = models.CharField(max_length=64, null=True)
    value = models.FloatField(null=True)
    attributes = models.JSONField(null=True)

    class Meta:
        managed = False
        db_table = "events"
        ordering = ["-occurred_at", "-id"]


class Quarantine(models.Model):
    """A rejected event, kept with its reasons until it is replayed or discarded."""

    class Status(models.TextChoices):
        OPEN = "open"
        REPLAYED = "replayed"
        DISCARDED = "discarded"

    received_at = models.DateTimeField(default=timezone.now)
    source = models.CharField(max_length=16)
    reference = models.CharField(max_length=64, blank=True, help_text="request, upload or topic/offset")
    index = models.IntegerField(help_text="position in the request, row number in a file")
    raw = models.JSONField(null=True, help_text="the event as received (text for undecodable input)")
    errors = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    replayed_at = models.DateTimeField(null=True, blank=True)
    event_id = models.CharField(max_length=128, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [models.Index(fields=["status", "-received_at"], name="quarantine_status_received")]
