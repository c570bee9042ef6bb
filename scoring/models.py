"""Anomalies: what every detector (transaction, KPI, stock, drift) reports, in one table per tenant."""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone


class Anomaly(models.Model):
    class Kind(models.TextChoices):
        TRANSACTION = "transaction"
        KPI = "kpi"
        STOCK = "stock"
        DRIFT = "drift"

    class Severity(models.TextChoices):
        LOW = "low"
        MEDIUM = "medium"
        HIGH = "high"
        CRITICAL = "critical"

    class Status(models.TextChoices):
        OPEN = "open"
        ACKNOWLEDGED = "acknowledged"
        RESOLVED = "resolved"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    occurred_at = models.DateTimeField(help_text="Data time of what was anomalous.")
    detected_at = models.DateTimeField(default=timezone.now)
    metric = models.CharField(max_length=64, blank=True)
    dimensions = models.JSONField(default=dict, blank=True)
    entity = models.CharField(max_length=200, blank=True, help_text="customer/ip/device/product/campaign id")
    event_ids = ArrayField(models.CharField(max_length=128), default=list, blank=True)
    score = models.FloatField()
    severity = models.CharField(max_length=8, choices=Severity.choices)
    direction = models.CharField(max_length=4, blank=True, choices=[("up", "up"), ("down", "down")])
    expected = models.FloatField(null=True, blank=True)
    observed = models.FloatField(null=True, blank=True)
    impact = models.JSONField(default=dict, blank=True, help_text='e.g. {"revenue_at_risk": 1234.5, "currency": "EUR"}')
    reasons = models.JSONField(default=list, blank=True, help_text="[{detector, text, value, threshold}]")
    detectors = models.JSONField(default=dict, blank=True, help_text="{detector name: score}")
    decision = models.CharField(max_length=8, blank=True, help_text="ALLOW/REVIEW/BLOCK for transactions")
    root_cause = models.JSONField(default=list, blank=True, help_text="ranked contributors for KPI anomalies")
    fingerprint = models.CharField(max_length=200, blank=True, db_index=True,
                                   help_text="kind + detector + metric/entity: groups anomalies into alerts")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    feedback = models.JSONField(null=True, blank=True, help_text="latest {label, note, by, at}")

    class Meta:
        ordering = ["-detected_at", "-id"]
        indexes = [
            models.Index(fields=["-detected_at", "-id"], name="anomaly_newest"),
            models.Index(fields=["occurred_at"], name="anomaly_occurred"),
            models.Index(fields=["kind", "severity"], name="anomaly_kind_severity"),
            models.Index(fields=["metric"], name="anomaly_metric"),
            models.Index(fields=["entity"], name="anomaly_entity"),
        ]

    def __str__(self) -> str:
        return f"{self.kind}:{self.metric or self.entity}@{self.occurred_at:%Y-%m-%d %H:%M} ({self.severity})"


class KpiBucket(models.Model):
    """Additive KPI measures per time bucket and dimension value, updated per ingested batch.

    Ratio KPIs (AOV, CTR, conversion, return rate, payment failure rate) are computed from these
    sums when read, never averaged. `bucket_start` is a UTC instant; hour and day buckets start at the
    tenant's local hour/midnight, so a tenant in UTC-8 sees its own days."""

    class Granularity(models.TextChoices):
        MINUTE = "minute"
        HOUR = "hour"
        DAY = "day"

    granularity = models.CharField(max_length=6, choices=Granularity.choices)
    bucket_start = models.DateTimeField()
    dimension = models.CharField(max_length=16, help_text="total, channel, campaign, product, store, country")
    value = models.CharField(max_length=128, blank=True, help_text="the dimension's value; '' for total")
    revenue = models.DecimalField(max_digits=20, decimal_places=4, default=0)
    orders = models.BigIntegerField(default=0)
    units = models.BigIntegerField(default=0)
    sessions = models.BigIntegerField(default=0, help_text="click events: one per session landing")
    impressions = models.BigIntegerField(default=0)
    returns = models.BigIntegerField(default=0)
    refund_amount = models.DecimalField(max_digits=20, decimal_places=4, default=0)
    payments = models.BigIntegerField(default=0)
    payments_failed = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["granularity", "dimension", "value", "bucket_start"],
                                               name="one_bucket")]
        indexes = [models.Index(fields=["granularity", "bucket_start"], name="bucket_time")]


class MetricPoint(models.Model):
    """Client-aggregated KPI points (`metric` events) at the client's own cadence."""

    metric = models.CharField(max_length=64)
    dimension = models.CharField(max_length=16, default="total")
    value = models.CharField(max_length=128, blank=True)
    at = models.DateTimeField()
    total = models.FloatField(default=0)
    count = models.IntegerField(default=0)
    last = models.FloatField(null=True)
    last_event_at = models.DateTimeField(null=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["metric", "dimension", "value", "at"], name="one_metric_point")]


class StockLevel(models.Model):
    """Current stock per product (latest `stock` event by data time) and its thresholds."""

    product_id = models.CharField(max_length=128, primary_key=True)
    level = models.BigIntegerField()
    threshold = models.BigIntegerField(null=True, help_text="warning threshold sent with the event or configured")
    critical_threshold = models.BigIntegerField(null=True)
    updated_at = models.DateTimeField(help_text="data time of the level")
