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


class Rule(models.Model):
    """A tenant's rule as data (validated by scoring.rules before every save); every change also
    writes a RuleVersion, so the history survives updates and deletion."""

    class Severity(models.TextChoices):
        LOW = "low"
        MEDIUM = "medium"
        HIGH = "high"
        CRITICAL = "critical"

    class Action(models.TextChoices):
        ALLOW = "allow"
        REVIEW = "review"
        BLOCK = "block"

    name = models.CharField(max_length=100, unique=True)
    description = models.CharField(max_length=500, blank=True)
    condition = models.JSONField(help_text='e.g. {"feature": "cust_count_1h", "op": ">", "value": 5}')
    score = models.FloatField(help_text="evidence weight 0..1 combined by the consensus")
    severity = models.CharField(max_length=8, choices=Severity.choices)
    action = models.CharField(max_length=8, choices=Action.choices, default=Action.REVIEW)
    enabled = models.BooleanField(default=True)
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"

    def definition(self) -> dict:
        return {"name": self.name, "description": self.description, "condition": self.condition,
                "score": self.score, "severity": self.severity, "action": self.action, "enabled": self.enabled}


class RuleVersion(models.Model):
    """One row per change of a rule. Its largest id is the tenant's rules revision (engine cache key)."""

    class Change(models.TextChoices):
        CREATED = "created"
        UPDATED = "updated"
        DELETED = "deleted"

    rule = models.ForeignKey(Rule, null=True, on_delete=models.SET_NULL, related_name="versions")
    rule_name = models.CharField(max_length=100)
    version = models.PositiveIntegerField()
    change = models.CharField(max_length=8, choices=Change.choices)
    definition = models.JSONField()
    changed_by = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["rule_name", "-version"], name="ruleversion_name")]


class ModelVersion(models.Model):
    """The tenant's model registry (the one place models are registered, promoted and rolled back).

    Version 0 is the global cold-start model shipped in scoring/artifacts_store; the learning layer
    registers tenant models as candidates and promotes them through scoring.registry."""

    class Kind(models.TextChoices):
        GLOBAL = "global"
        TENANT = "tenant"

    class Status(models.TextChoices):
        ACTIVE = "active"
        CANDIDATE = "candidate"
        RETIRED = "retired"

    version = models.PositiveIntegerField(unique=True)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.CANDIDATE)
    artifact_path = models.CharField(max_length=500, help_text="relative to scoring/artifacts_store for the "
                                                               "global model, else to the media root")
    sha256 = models.CharField(max_length=64)
    metrics = models.JSONField(default=dict, blank=True)
    training_from = models.DateTimeField(null=True, blank=True)
    training_to = models.DateTimeField(null=True, blank=True)
    features = models.JSONField(default=list, blank=True)
    code_version = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    promoted_at = models.DateTimeField(null=True, blank=True)
    notes = models.TextField(blank=True)

    class Meta:
        ordering = ["-version"]
        constraints = [models.UniqueConstraint(fields=["status"], condition=models.Q(status="active"),
                                               name="one_active_model")]

    def __str__(self) -> str:
        return f"model v{self.version} ({self.kind}, {self.status})"


class CalibrationState(models.Model):
    """Per detector (of one model version): the tenant's percentile calibration of raw scores, fitted
    on its recent traffic. Also holds the tenant's amount prior (detector 'amount_prior', no model
    version): the tenant-wide centre/spread of log amounts that new customers are compared with."""

    model_version = models.PositiveIntegerField(null=True, blank=True,
                                                help_text="empty for model-independent state (the amount prior)")
    detector = models.CharField(max_length=64, help_text="detector name, or 'amount_prior'")
    calibrator = models.JSONField(help_text="scoring.calibration to_dict() output")
    n_reference = models.PositiveIntegerField(default=0)
    fitted_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model_version", "detector"], name="one_calibration",
                                               nulls_distinct=False)]
