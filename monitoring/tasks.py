"""KPI monitoring tasks (per tenant: beat runs them through pulse.fan_out in each tenant's schema)."""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(name="monitoring.kpi_evaluate", acks_late=True, soft_time_limit=240, time_limit=300)
def kpi_evaluate() -> dict[str, int]:
    """Evaluate the buckets that closed since the last run (and any backfilled history)."""
    return services.kpi_evaluate()


@shared_task(name="monitoring.kpi_fit", acks_late=True, soft_time_limit=600, time_limit=660)
def kpi_fit() -> dict[str, int]:
    """Refresh the Prophet forecast tables of the current refit period."""
    return services.kpi_fit(budget_seconds=540)


@shared_task(name="monitoring.stock_check", acks_late=True, soft_time_limit=120, time_limit=150)
def stock_check() -> dict[str, int]:
    return services.stock_check()
