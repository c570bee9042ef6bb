"""Delivery layer tables (per tenant schema): where notifications go (Channel), which anomalies go there
(Policy), the grouped incident (Alert), each notification and its attempts (Delivery), silences
(Snooze) and the persisted live feed (FeedMessage)."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone

SEVERITIES = ["low", "medium", "high", "critical"]
SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}


class Channel(models.Model):
    class Kind(models.TextChoices):
        WEBHOOK = "webhook"
        EMAIL = "email"
        SLACK = "slack"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    name = models.CharField(max_length=100)
    config = models.JSONField(default=dict, help_text="webhook {url, secret} / email {recipients} / slack {webhook_url}")
    is_enabled = models.BooleanField(default=True)
    disabled_reason = models.TextField(blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class Policy(models.Model):
    """Which anomalies (and order status changes) go to which channels, and how loudly."""

    name = models.CharField(max_length=100)
    channels = models.ManyToManyField(Channel, related_name="policies", blank=True)
    enabled = models.BooleanField(default=True)
    notify_anomalies = models.BooleanField(default=True)
    min_severity = models.CharField(max_length=8, default="medium", choices=[(s, s) for s in SEVERITIES])
    kinds = models.JSONField(default=list, blank=True, help_text="anomaly kinds; empty means all")
    filters = models.JSONField(default=dict, blank=True,
                               help_text="{detectors, metrics, entities, directions, dimensions, min_score}")
    quiet_hours = models.JSONField(null=True, blank=True,
                                   help_text='{"start": "22:00", "end": "07:00", "allow_severity": "critical"} '
                                             "in the tenant's time zone")
    cooldown_seconds = models.PositiveIntegerField(null=True, blank=True,
                                                   help_text="empty: the tenant's alerts.cooldown_seconds")
    digest_minutes = models.PositiveIntegerField(default=0, help_text="0 sends at once; N batches into a digest")
    notify_resolved = models.BooleanField(default=True)
    notify_order_status = models.BooleanField(default=False)
    order_statuses = models.JSONField(default=list, blank=True, help_text="order statuses; empty means all")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "policies"

    def __str__(self) -> str:
        return self.name


class Alert(models.Model):
    """Anomalies sharing a fingerprint, from the first until a quiet period passes without a new one."""

    class Status(models.TextChoices):
        OPEN = "open"
        RESOLVED = "resolved"

    fingerprint = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    title = models.CharField(max_length=300)
    kind = models.CharField(max_length=16)
    metric = models.CharField(max_length=64, blank=True)
    entity = models.CharField(max_length=200, blank=True)
    severity = models.CharField(max_length=8, help_text="latest anomaly's severity")
    peak_severity = models.CharField(max_length=8)
    count = models.PositiveIntegerField(default=0)
    first_anomaly = models.ForeignKey("scoring.Anomaly", null=True, on_delete=models.SET_NULL, related_name="+")
    last_anomaly = models.ForeignKey("scoring.Anomaly", null=True, on_delete=models.SET_NULL, related_name="+")
    latest = models.JSONField(default=dict, help_text="latest values: expected, observed, score, impact, occurred_at")
    opened_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    suppressed_count = models.PositiveIntegerField(default=0, help_text="anomalies that arrived while snoozed")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["fingerprint"], condition=Q(status="open"), name="one_open_alert_per_fingerprint"),
        ]
        indexes = [
            models.Index(fields=["status", "last_seen_at"], name="alert_status_seen"),
            models.Index(fields=["fingerprint", "-id"], name="alert_fingerprint"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.title} ({self.status})"


class AlertAnomaly(models.Model):
    """Which alert each anomaly went into. The unique anomaly id makes dispatch idempotent: a redelivered
    task finds its anomalies already claimed and counts nothing twice."""

    anomaly = models.OneToOneField("scoring.Anomaly", on_delete=models.CASCADE, related_name="+")
    alert = models.ForeignKey(Alert, null=True, on_delete=models.CASCADE, related_name="anomaly_links")
    created_at = models.DateTimeField(default=timezone.now)


class Delivery(models.Model):
    """One notification to one channel. Written before sending, updated with the outcome."""

    class Kind(models.TextChoices):
        ALERT = "alert"
        RESOLVED = "resolved"
        DIGEST = "digest"
        ORDER_STATUS = "order_status"
        TEST = "test"

    class Status(models.TextChoices):
        HELD = "held"            # waiting for a digest (quiet hours, digest mode, rate cap)
        PENDING = "pending"      # queued for sending
        SENDING = "sending"      # claimed by a worker
        SENT = "sent"
        FAILED = "failed"
        DIGESTED = "digested"    # folded into the digest delivery `digest`
        CANCELLED = "cancelled"  # never sent; `error` says why (e.g. channel disabled)

    key = models.UUIDField(default=uuid.uuid4, unique=True, help_text="X-Pulse-Delivery: stable across retries")
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="deliveries")
    policy = models.ForeignKey(Policy, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    alert = models.ForeignKey(Alert, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries")
    digest = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="items")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    event = models.CharField(max_length=32, blank=True, help_text="payload type, e.g. alert.opened")
    fingerprint = models.CharField(max_length=200, blank=True)
    severity = models.CharField(max_length=8, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    hold_reason = models.CharField(max_length=16, blank=True, help_text="quiet_hours / digest / rate_limited")
    scheduled_for = models.DateTimeField(null=True, blank=True)
    payload = models.JSONField(default=dict)
    attempts = models.PositiveIntegerField(default=0)
    response_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    duration_ms = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    claimed_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "deliveries"
        indexes = [
            models.Index(fields=["channel", "fingerprint", "-created_at"], name="delivery_cooldown"),
            models.Index(fields=["channel", "created_at"], name="delivery_rate"),
            models.Index(fields=["status", "scheduled_for"], name="delivery_status_due"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} → {self.channel_id} ({self.status})"


class Snooze(models.Model):
    """Silences notifications for a fingerprint or an entity until `until` (alerts still update)."""

    fingerprint = models.CharField(max_length=200, blank=True)
    entity = models.CharField(max_length=200, blank=True)
    until = models.DateTimeField()
    reason = models.CharField(max_length=500, blank=True)
    created_by = models.CharField(max_length=150)
    created_at = models.DateTimeField(default=timezone.now)
    cancelled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=~Q(fingerprint="") | ~Q(entity=""), name="snooze_has_target"),
        ]

    def __str__(self) -> str:
        return f"snooze {self.fingerprint or self.entity} until {self.until:%Y-%m-%d %H:%M}"


class FeedMessage(models.Model):
    """Every message pushed to the live feed, so a reconnecting client can ask for what it missed."""

    type = models.CharField(max_length=32)
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["id"]

    def envelope(self) -> dict:
        return {"id": self.pk, "type": self.type, "created_at": self.created_at.isoformat(), "data": self.payload}
