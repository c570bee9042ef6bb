"""Celery entry points of the learning layer: take ids, call a service. All run in the schema of the
tenant that enqueued them (TenantTask); beat work reaches every tenant through `pulse.fan_out`."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from . import services


@shared_task(name="learning.tasks.thresholds_recalibrate", acks_late=True, soft_time_limit=240, time_limit=300)
def thresholds_recalibrate() -> int:
    """Per tenant (beat): move unpinned thresholds toward the labels' target or the alert budget."""
    return len(services.thresholds_recalibrate())


@shared_task(name="learning.tasks.drift_check", acks_late=True, soft_time_limit=240, time_limit=300)
def drift_check() -> dict[str, Any]:
    """Per tenant (beat): recent feature/score distributions vs the active model's reference window."""
    report = services.drift_check()
    return {"report": report.pk if report else None, "level": report.level if report else None}


@shared_task(name="learning.tasks.retrain_scheduled", acks_late=True)
def retrain_scheduled() -> int | None:
    """Per tenant (beat): queue a scheduled retraining when the tenant has it enabled."""
    from .config import learning_config

    if not learning_config(services._tenant()).retraining.scheduled:
        return None
    return services.retrain_request(trigger="schedule", by="schedule").pk


# Training a forest and a boosted model on weeks of events takes minutes, not seconds.
@shared_task(name="learning.tasks.retrain_run", acks_late=True, soft_time_limit=1500, time_limit=1800)
def retrain_run(job_id: int) -> dict[str, Any]:
    job = services.retrain_run(job_id=job_id)
    return {"job": job.pk, "status": job.status, "version": job.model_version, "promoted": job.promoted}


@shared_task(name="learning.tasks.log_prune", acks_late=True)
def log_prune() -> int:
    return services.scored_events_prune()
