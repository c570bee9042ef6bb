"""Ingestion storage, per tenant schema.

Events live in a PostgreSQL table partitioned by month (created by migration 0002, written with COPY);
`Event` maps it read-only for queries. `EventKey` makes ingestion idempotent per tenant: an event id
is stored once, whatever the entry point (API, upload, Kafka, import). `EventBatch` is the outbox:
it commits with its events and is handed to scoring after commit; a sweeper re-enqueues any batch a
dead worker left behind."""

from __future__ import annotations

from typing import Any

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

    # Not a column: the rows `events_ingest` just stored in this batch, as `batch_events_load` reads
    # them, when one INSERT wrote (and returned) them; None when they must be read back.
    stored_rows: list[dict[str, Any]] | None = None

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


class Upload(models.Model):
    """A CSV or NDJSON file (optionally gzip) stored on disk and ingested by a worker in chunks.

    `rows_done` is committed in the same transaction as each chunk's events, so a worker that dies
    resumes after the last stored chunk and never stores or quarantines a row twice."""

    class Status(models.TextChoices):
        PENDING = "pending"
        PROCESSING = "processing"
        DONE = "done"
        FAILED = "failed"

    class Source(models.TextChoices):
        API = "api"
        IMPORT = "import"

    created_at = models.DateTimeField(default=timezone.now)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.API)
    import_source = models.ForeignKey("ImportSource", null=True, blank=True, on_delete=models.SET_NULL,
                                      related_name="uploads")
    filename = models.CharField(max_length=255, blank=True)
    format = models.CharField(max_length=8, help_text="csv or ndjson")
    path = models.CharField(max_length=500, help_text="relative to MEDIA_ROOT")
    size_bytes = models.BigIntegerField(default=0)
    compressed = models.BooleanField(default=False)
    sha256 = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    rows_done = models.BigIntegerField(default=0)
    rows_total = models.BigIntegerField(null=True, blank=True, help_text="known once the whole file is read")
    rows_accepted = models.BigIntegerField(default=0)
    rows_duplicates = models.BigIntegerField(default=0)
    rows_rejected = models.BigIntegerField(default=0)
    bytes_done = models.BigIntegerField(default=0, help_text="position in the stored file (progress)")
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "updated_at"], name="upload_status_updated")]

    @property
    def reference(self) -> str:
        return f"upload:{self.pk}"


class ImportSource(models.Model):
    """A place beat polls for new files: a folder under PULSE_IMPORT_ROOT/<schema>/ or an HTTP(S) URL of
    one file or of a listing (HTML links, JSON array or one URL per line)."""

    class Kind(models.TextChoices):
        FOLDER = "folder"
        HTTP = "http"

    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    location = models.CharField(max_length=1000, help_text="folder (relative to the tenant's import root) or URL")
    pattern = models.CharField(max_length=200, default="*", help_text="shell pattern on file names, e.g. *.csv.gz")
    format = models.CharField(max_length=8, default="auto", help_text="auto (from the file name), csv or ndjson")
    enabled = models.BooleanField(default=True)
    poll_interval_seconds = models.PositiveIntegerField(default=300)
    created_at = models.DateTimeField(default=timezone.now)
    last_polled_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    files_imported = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class ImportedFile(models.Model):
    """A file an import source has seen. A file is imported once: the same name with the same
    fingerprint (size+mtime or ETag/Last-Modified) is not even fetched again, and the same content
    (sha256) under another name or fingerprint is not ingested again."""

    source = models.ForeignKey(ImportSource, on_delete=models.CASCADE, related_name="files")
    name = models.CharField(max_length=500)
    fingerprint = models.CharField(max_length=200)
    sha256 = models.CharField(max_length=64)
    size_bytes = models.BigIntegerField(default=0)
    upload = models.ForeignKey(Upload, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-seen_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["source", "name", "fingerprint"], name="imported_once")]
        indexes = [models.Index(fields=["source", "sha256"], name="imported_sha")]


class OrderStatusChange(models.Model):
    """One step of an order's timeline, from an `order` or `order_status` event. `previous_status` follows
    data time (occurred_at), not arrival order: a late event is slotted in and its successor corrected."""

    order_id = models.CharField(max_length=128)
    status = models.CharField(max_length=32)
    previous_status = models.CharField(max_length=32, blank=True)
    occurred_at = models.DateTimeField()
    event_id = models.CharField(max_length=128, unique=True)
    event_type = models.CharField(max_length=16)
    customer_id = models.CharField(max_length=128, blank=True)
    batch_id = models.BigIntegerField()
    recorded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["order_id", "occurred_at", "event_id"]
        indexes = [models.Index(fields=["order_id", "occurred_at"], name="order_timeline")]


class UsageFlush(models.Model):
    """Marks a Redis usage delta as added to tenants.UsageCounter (same transaction), so a flush that
    crashed after the database commit is never added a second time."""

    token = models.CharField(max_length=64, primary_key=True)
    day = models.DateField()
    events_accepted = models.BigIntegerField(default=0)
    api_calls = models.BigIntegerField(default=0)
    applied_at = models.DateTimeField(default=timezone.now)
