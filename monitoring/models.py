"""KPI monitoring per tenant: which series are watched and how, known events, evaluation state and fit
caches, stock thresholds and alert state.

A `WatchedSeries` row is a rule that may cover many concrete series: `value` '' on a dimension means
"every value of that dimension" (every channel, every campaign). A `SeriesState` row is one concrete
series (metric x dimension x value x granularity): the last bucket evaluated, the cached season, and
the run of anomalous buckets in progress (so min-duration and "one anomaly per incident" work across
evaluation runs)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

GRANULARITY_CHOICES = [("minute", "minute"), ("hour", "hour"), ("day", "day"),
                       ("native", "client cadence (metric events)")]


class WatchedSeries(models.Model):
    class Direction(models.TextChoices):
        BOTH = "both"
        UP = "up"
        DOWN = "down"

    metric = models.CharField(max_length=64, help_text="built-in KPI (revenue, ctr, ...) or a client metric name")
    dimension = models.CharField(max_length=16, default="total",
                                 help_text="total, channel, campaign, product, store or country")
    value = models.CharField(max_length=128, blank=True, help_text="'' on a dimension: every value of it")
    granularity = models.CharField(max_length=8, choices=GRANULARITY_CHOICES, default="hour")
    detectors = models.JSONField(default=list, blank=True,
                                 help_text="seasonal_z, ratio_binomial, prophet, iforest; empty: defaults")
    consensus = models.CharField(max_length=10, default="auto",
                                 help_text="auto, pairwise, all, or a number of agreeing detectors")
    direction = models.CharField(max_length=4, choices=Direction.choices, default=Direction.BOTH)
    min_relative_change = models.FloatField(default=0.0, help_text="e.g. 0.2: ignore moves under 20 %")
    min_duration = models.PositiveSmallIntegerField(default=1, help_text="consecutive anomalous buckets")
    z_threshold = models.FloatField(default=4.0)
    enabled = models.BooleanField(default=True)
    is_default = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["metric", "dimension", "value", "granularity"]
        constraints = [models.UniqueConstraint(fields=["metric", "dimension", "value", "granularity"],
                                               name="one_watched_series")]
        verbose_name_plural = "watched series"

    def __str__(self) -> str:
        scope = "total" if self.dimension == "total" else f"{self.dimension}={self.value or '*'}"
        return f"{self.metric} [{scope}] per {self.granularity}"


class KnownEvent(models.Model):
    """A planned event (flash sale, holiday): anomalies inside [start, end) are muted or marked."""

    class Action(models.TextChoices):
        MUTE = "mute"
        MARK = "mark"

    name = models.CharField(max_length=200)
    start = models.DateTimeField()
    end = models.DateTimeField()
    action = models.CharField(max_length=4, choices=Action.choices, default=Action.MUTE)
    metrics = models.JSONField(default=list, blank=True, help_text="empty: every metric")
    dimension = models.CharField(max_length=16, blank=True, help_text="empty: every dimension")
    value = models.CharField(max_length=128, blank=True, help_text="empty: every value")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["start", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.action}) {self.start:%Y-%m-%d %H:%M}"


class SeriesState(models.Model):
    metric = models.CharField(max_length=64)
    dimension = models.CharField(max_length=16)
    value = models.CharField(max_length=128, blank=True)
    granularity = models.CharField(max_length=8)
    last_bucket = models.DateTimeField(null=True, help_text="UTC start of the last evaluated bucket")
    period = models.IntegerField(null=True, help_text="season in buckets (0: none), fitted at period_boundary")
    period_boundary = models.BigIntegerField(null=True, help_text="grid index the season was fitted before")
    run_direction = models.SmallIntegerField(default=0)
    run_length = models.IntegerField(default=0)
    run_start = models.DateTimeField(null=True)
    run_anomaly_id = models.BigIntegerField(null=True)
    evidence = models.JSONField(null=True, blank=True,
                                help_text='evidence run: {"dir", "len", "start": UTC epoch, "sums": [...], "kept"}')
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["metric", "dimension", "value", "granularity"],
                                               name="one_series_state")]


class SeriesFit(models.Model):
    """A cached model fit of one series (the Prophet forecast table), valid for one refit period."""

    state = models.ForeignKey(SeriesState, on_delete=models.CASCADE, related_name="fits")
    detector = models.CharField(max_length=32)
    boundary = models.BigIntegerField(help_text="grid index the model was fitted before")
    table = models.JSONField(help_text='{"start": grid index, "yhat": [...], "lower": [...], "upper": [...]}')
    fitted_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["state", "detector"], name="one_series_fit")]


class MonitorState(models.Model):
    """One row per tenant: defaults created, late-data rewind point, evaluation counters."""

    defaults_created = models.BooleanField(default=False)
    rewind_to = models.DateTimeField(null=True, help_text="late data arrived for buckets from here on")
    buckets_evaluated = models.BigIntegerField(default=0)
    last_run_at = models.DateTimeField(null=True)


class StockThreshold(models.Model):
    product_id = models.CharField(max_length=128, unique=True)
    warning = models.BigIntegerField(null=True, blank=True, help_text="empty: the threshold sent with stock events")
    critical = models.BigIntegerField(null=True, blank=True, help_text="empty: 0")
    lead_time_days = models.FloatField(null=True, blank=True, help_text="empty: the tenant's kpi config")

    class Meta:
        ordering = ["product_id"]

    def __str__(self) -> str:
        return f"{self.product_id}: warning {self.warning}, critical {self.critical}"


class StockAlertState(models.Model):
    """Stock episode per product (kind "episode", see scoring.kpi.stock.stock_episodes): what was already
    alerted in it, when the reorder point was reached and the level at the previous check (a rise is a
    restock), so an episode alerts once per escalation, not on every batch."""

    product_id = models.CharField(max_length=128)
    kind = models.CharField(max_length=8, help_text="episode (level / cover: states before episodes)")
    level = models.CharField(max_length=8, default="ok", help_text="ok, open, risk or out")
    anomaly_id = models.BigIntegerField(null=True)
    reorder_at = models.DateTimeField(null=True, help_text="level first seen at/below the reorder point")
    last_level = models.FloatField(null=True, help_text="level at the previous check")
    level_at = models.DateTimeField(null=True, help_text="data time of last_level")
    velocity = models.FloatField(null=True, help_text="units/day at which the level falls (weighted mean)")
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["product_id", "kind"], name="one_stock_alert_state")]
