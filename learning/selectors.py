"""Reads of the learning layer."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from .models import DriftReport, LabelHistory, RetrainJob, Threshold, ThresholdChange


def thresholds_list() -> list[Threshold]:
    """Every threshold row; the scoring review threshold always shows (created on first read)."""
    from .services import REVIEW_THRESHOLD, threshold_get

    threshold_get(detector=REVIEW_THRESHOLD[0], metric=REVIEW_THRESHOLD[1])
    return list(Threshold.objects.all())


def threshold_changes(*, detector: str | None = None, metric: str | None = None) -> QuerySet[ThresholdChange]:
    qs = ThresholdChange.objects.select_related("threshold")
    if detector:
        qs = qs.filter(threshold__detector=detector)
    if metric:
        qs = qs.filter(threshold__metric=metric)
    return qs


def models_list() -> list[Any]:
    """The tenant's registry, newest first, the global version 0 included."""
    from scoring import registry
    from scoring.models import ModelVersion

    registry.active_version()  # creates version 0 on first use
    return list(ModelVersion.objects.order_by("-version"))


def drift_reports() -> QuerySet[DriftReport]:
    return DriftReport.objects.all()


def retrain_jobs() -> QuerySet[RetrainJob]:
    return RetrainJob.objects.all()


def feedback_history(*, anomaly_id: int) -> QuerySet[LabelHistory]:
    return LabelHistory.objects.filter(anomaly_id=anomaly_id)
