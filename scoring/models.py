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
