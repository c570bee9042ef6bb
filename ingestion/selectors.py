"""Reads of the ingestion layer (uploads, order timelines)."""

from __future__ import annotations

from typing import Any

from django.db import connection

from .models import OrderStatusChange, Quarantine, Upload

MAX_REJECTED_SHOWN = 1000


def current_tenant() -> Any:
    """The active tenant as a full Tenant row. In Celery tasks django-tenants only sets a FakeTenant
    (schema name only), but ingestion needs the tenant's time zone, currency and plan."""
    tenant = getattr(connection, "tenant", None)
    if tenant is not None and getattr(tenant, "pk", None) and hasattr(tenant, "currency"):
        return tenant
    from tenants.models import Tenant

    return Tenant.objects.get(schema_name=connection.schema_name)


def upload_rejections(*, upload: Upload, after_row: int = 0, limit: int = 100) -> tuple[list[dict[str, Any]], int | None]:
    """Rejected rows of an upload in row order, `limit` at a time after `after_row`; and the next
    `after_row` (None at the end)."""
    limit = max(1, min(limit, MAX_REJECTED_SHOWN))
    rows = list(Quarantine.objects.filter(reference=f"upload:{upload.pk}", index__gt=after_row)
                .order_by("index").values("id", "index", "errors", "raw", "status")[: limit + 1])
    next_after = rows[limit - 1]["index"] if len(rows) > limit else None
    return ([{"row": r["index"], "errors": r["errors"], "raw": r["raw"], "quarantine_id": r["id"],
              "status": r["status"]} for r in rows[:limit]], next_after)


def order_tracking(*, order_id: str) -> dict[str, Any] | None:
    """Current status and timeline (data-time order) of one order, or None when unknown."""
    changes = list(OrderStatusChange.objects.filter(order_id=order_id).order_by("occurred_at", "event_id"))
    if not changes:
        return None
    last = changes[-1]
    customer = next((c.customer_id for c in reversed(changes) if c.customer_id), "")
    return {
        "order_id": order_id,
        "status": last.status,
        "customer_id": customer or None,
        "first_seen_at": changes[0].occurred_at,
        "updated_at": last.occurred_at,
        "timeline": [{"status": c.status, "previous_status": c.previous_status or None, "occurred_at": c.occurred_at,
                      "event_id": c.event_id, "event_type": c.event_type} for c in changes],
    }
