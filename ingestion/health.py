"""Ingest lag for GET /api/v1/status: batches accepted but not yet processed by scoring/rollups."""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.db.models import Min
from django.utils import timezone

from pulse.lib.health import register

from .models import EventBatch


@register("ingest")
def check_ingest() -> dict[str, Any]:
    if connection.schema_name == "public":
        return {"ok": True}
    waiting = EventBatch.objects.filter(status__in=[EventBatch.Status.PENDING, EventBatch.Status.PROCESSING])
    summary = waiting.aggregate(oldest=Min("created_at"))
    pending = waiting.count()
    lag = (timezone.now() - summary["oldest"]).total_seconds() if summary["oldest"] else 0.0
    failed = EventBatch.objects.filter(status=EventBatch.Status.FAILED).count()
    # Minutes of backlog means the workers cannot keep up (or are down): degraded, not broken.
    return {"ok": lag < 300 and failed == 0, "pending_batches": pending, "lag_seconds": round(lag, 3),
            "failed_batches": failed}
