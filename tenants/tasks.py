"""Platform tasks: beat entries that fan a per-tenant task out to every active tenant."""

from __future__ import annotations

from typing import Any

from celery import current_app, shared_task
from django_tenants.utils import schema_context

from .selectors import tenants_active


@shared_task(name="pulse.fan_out")
def fan_out(task_name: str, args: list[Any] | None = None) -> int:
    """Enqueue `task_name` once per active tenant, each in its tenant's schema."""
    task = current_app.tasks[task_name]
    tenants = tenants_active()
    for tenant in tenants:
        with schema_context(tenant.schema_name):
            task.apply_async(args=args or [])
    return len(tenants)
