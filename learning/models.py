"""Learning tables (per tenant schema): labels and feedback history, the scored-event log the
learning jobs read, thresholds and their changes, drift reports and retraining jobs.

The model registry itself is scoring.models.ModelVersion (scoring.registry is the one writer)."""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone


class Label(models.Model):
    """Ground truth for one event: the latest word wins (a chargeback file after an analyst's
    feedback, or the other way round); every write is also kept in LabelHistory."""

    class Value(models.TextChoices):
        FRAUD = "fraud"
        LEGIT = "legit"

    class Source(models.TextChoices):
        BULK = "bulk"
        FEEDBACK = "feedback"

    event_id = models.CharField(max_length=128, unique=True)
    label = models.CharField(max_length=8, choices=Value.choices)
    known_at = models.DateTimeField(help_text="when the truth became known (chargeback date); training "
                                              "only uses labels known at its cutoff")
    source = models.CharField(max_length=12, choices=Source.choices)
    flagged = models.BooleanField(default=False, help_text="an anomaly existed for the event when labelled")
    anomaly_id = models.BigIntegerField(null=True, blank=True)
    by = models.CharField(max_length=200, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["known_at"], name="label_known_at")]

    def __str__(self) -> str:
        return f"{self.event_id}: {self.label}"


class LabelHistory(models.Model):
    """Every label and feedback ever given (who, when, what), newest first."""

    event_id = models.CharField(max_length=128, blank=True)
    anomaly_id = models.BigIntegerField(null=True, blank=True)
    label = models.CharField(max_length=16, help_text="fraud/legit or true_positive/false_positive")
    note = models.TextField(blank=True)
    source = models.CharField(max_length=12)
    by = models.CharField(max_length=200, blank=True)
    known_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["anomaly_id"], name="labelhistory_anomaly"),
                   models.Index(fields=["event_id"], name="labelhistory_event")]


class ScoredEvent(models.Model):
    """What the scoring path saw and said for one transaction: the learning jobs' only input for
    recalibration (score distribution), drift (features and scores) and retraining (features)."""

    event_id = models.CharField(max_length=128)
    occurred_at = models.DateTimeField()
    model_version = models.IntegerField()
    risk = models.FloatField()
    decision = models.CharField(max_length=8)
    detectors = models.JSONField(default=dict, help_text="detector -> calibrated score")
    features = ArrayField(models.FloatField(), help_text="values of learning.log.LOG_FEATURES, in order")
    context = models.JSONField(default=dict, help_text="store_id, channel, payment_method, country, status")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["occurred_at"], name="scoredevent_time"),
                   models.Index(fields=["event_id"], name="scoredevent_event")]


class Threshold(models.Model):
    """The active value of one threshold (detector x metric). `scoring/consensus/review_threshold`
    is mirrored into the tenant's `scoring` config, which the scoring path reads."""

    detector = models.CharField(max_length=64)
    metric = models.CharField(max_length=128)
    value = models.FloatField()
    pinned = models.BooleanField(default=False, help_text="a person fixed it: recalibration leaves it alone")
    pinned_by = models.CharField(max_length=200, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["detector", "metric"]
        constraints = [models.UniqueConstraint(fields=["detector", "metric"], name="one_threshold")]

    def __str__(self) -> str:
        return f"{self.detector}/{self.metric} = {self.value:.4f}"


class ThresholdChange(models.Model):
    class Action(models.TextChoices):
        RECALIBRATED = "recalibrated"
        PINNED = "pinned"
        UNPINNED = "unpinned"
        ROLLED_BACK = "rolled_back"

    threshold = models.ForeignKey(Threshold, on_delete=models.CASCADE, related_name="changes")
    action = models.CharField(max_length=16, choices=Action.choices)
    old_value = models.FloatField()
    new_value = models.FloatField()
    mode = models.CharField(max_length=16, blank=True, help_text="precision / recall / budget / manual")
    reason = models.TextField()
    expected_before = models.JSONField(default=dict, help_text="precision, recall, alerts/day at the old value")
    expected_after = models.JSONField(default=dict, help_text="precision, recall, alerts/day at the new value")
    details = models.JSONField(default=dict, blank=True)
    by = models.CharField(max_length=200)
    rolled_back_by = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL,
                                       related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]


class DriftReport(models.Model):
    class Level(models.TextChoices):
        NONE = "none"
        MODERATE = "moderate"
        MAJOR = "major"

    created_at = models.DateTimeField(default=timezone.now)
    model_version = models.IntegerField()
    level = models.CharField(max_length=8, choices=Level.choices)
    reference_from = models.DateTimeField()
    reference_to = models.DateTimeField()
    recent_from = models.DateTimeField()
    recent_to = models.DateTimeField()
    n_reference = models.IntegerField(default=0)
    n_recent = models.IntegerField(default=0)
    features = models.JSONField(default=list, help_text="per feature: psi, ks, p-value, level, means")
    score = models.JSONField(null=True, blank=True)
    notes = models.JSONField(default=list, blank=True)
    anomaly_id = models.BigIntegerField(null=True, blank=True)
    retrain_job = models.ForeignKey("RetrainJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-id"]


class RetrainJob(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule"
        DRIFT = "drift"
        REQUEST = "request"

    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    trigger = models.CharField(max_length=8, choices=Trigger.choices)
    requested_by = models.CharField(max_length=200, blank=True)
    cutoff = models.DateTimeField(null=True, blank=True, help_text="training data and labels known up to here")
    champion_version = models.IntegerField(null=True, blank=True)
    model_version = models.IntegerField(null=True, blank=True, help_text="the registered challenger")
    promoted = models.BooleanField(default=False)
    verdict = models.TextField(blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
