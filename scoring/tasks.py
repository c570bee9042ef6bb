"""Celery tasks of the scoring layer (tenant-aware: they run in the enqueuing tenant's schema)."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="scoring.calibration_refresh", acks_late=True, soft_time_limit=240, time_limit=300)
def calibration_refresh(min_scores: int | None = None) -> dict[str, int]:
    """Refit the tenant's per-detector percentile calibrators and amount prior on its recent scores
    (`min_scores` lowers the bar during a new tenant's warm-up)."""
    from tenants.selectors import tenant_current

    from .pipeline import calibration_fit

    return calibration_fit(tenant=tenant_current(), min_scores=min_scores)
