"""Order timelines from `order` and `order_status` events, written in bulk as a batch consumer.

Events arrive out of order (a late `shipped` after `delivered`, a backfill of last week): the timeline
is ordered by data time (occurred_at, then event id for ties), and `previous_status` is recomputed for
every order the batch touches, so a late event is slotted in and its successor's `previous_status` is
corrected. One SELECT loads the existing steps of the batch's orders, one bulk INSERT and one bulk
UPDATE write the result. An `order` event without a status opens the timeline as "placed".
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

from django.db import transaction

from .models import OrderStatusChange

log = logging.getLogger(__name__)

ORDER_PLACED = "placed"
TIMELINE_TYPES = ("order", "order_status")


def orders_consume(*, batch: Any, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Batch consumer (settings.PULSE_BATCH_CONSUMERS): add the batch's order steps to the timelines.

    Runs inside the consumer transaction of ingestion.tasks. Returns the new changes; after commit they
    are passed to `alerts.services.order_status_notify(changes=...)` when that function exists."""
    steps = [e for e in events if e.get("type") in TIMELINE_TYPES and e.get("order_id")]
    if not steps:
        return []
    order_ids = sorted({e["order_id"] for e in steps})
    existing: dict[str, list[OrderStatusChange]] = defaultdict(list)
    for change in OrderStatusChange.objects.filter(order_id__in=order_ids):
        existing[change.order_id].append(change)
    known_ids = {c.event_id for changes in existing.values() for c in changes}

    new: list[OrderStatusChange] = []
    for event in steps:
        if event["event_id"] in known_ids:
            continue  # already on the timeline (a replayed consumer)
        known_ids.add(event["event_id"])
        change = OrderStatusChange(
            order_id=event["order_id"], status=(event.get("status") or ORDER_PLACED)[:32],
            occurred_at=event["occurred_at"], event_id=event["event_id"], event_type=event["type"],
            customer_id=event.get("customer_id") or "", batch_id=batch.pk)
        existing[change.order_id].append(change)
        new.append(change)
    if not new:
        return []

    touched = {c.order_id for c in new}
    corrected: list[OrderStatusChange] = []
    for order_id in touched:
        timeline = sorted(existing[order_id], key=lambda c: (c.occurred_at, c.event_id))
        previous = ""
        for change in timeline:
            if change.pk is not None and change.previous_status != previous:
                corrected.append(change)  # a late event was slotted in before it
            change.previous_status = previous
            previous = change.status
    OrderStatusChange.objects.bulk_create(new, batch_size=2000, ignore_conflicts=True)
    if corrected:
        OrderStatusChange.objects.bulk_update(corrected, ["previous_status"], batch_size=2000)

    changes = [{"order_id": c.order_id, "status": c.status, "previous_status": c.previous_status or None,
                "occurred_at": c.occurred_at.isoformat(), "event_id": c.event_id,
                "customer_id": c.customer_id or None} for c in sorted(new, key=lambda c: (c.occurred_at, c.event_id))]
    transaction.on_commit(lambda: _notify(changes))
    return changes


def _notify(changes: list[dict[str, Any]]) -> None:
    # The alerts app is built separately: call it only when it provides the hook.
    try:
        from alerts import services as alert_services
    except ImportError:
        return
    notify = getattr(alert_services, "order_status_notify", None)
    if notify is None:
        return
    try:
        notify(changes=changes)
    except Exception:
        # The timeline is committed; a notification failure must not fail the batch.
        log.exception("order_status_notify failed for %d changes", len(changes))
