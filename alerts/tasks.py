"""Celery entry points of the delivery layer: take ids, call a service. All run in the schema of the
tenant that enqueued them (TenantTask); beat work reaches every tenant through `pulse.fan_out`."""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(name="alerts.tasks.anomalies_dispatch", acks_late=True)
def anomalies_dispatch(anomaly_ids: list[int]) -> dict[str, int]:
    """New anomalies (after their commit) → alerts, live feed, deliveries. Safe to run twice."""
    result = services.alerts_dispatch(anomaly_ids=anomaly_ids)
    return {"anomalies": result.anomalies, "opened": result.alerts_opened, "updated": result.alerts_updated,
            "pending": len(result.pending), "held": result.held}


@shared_task(name="alerts.tasks.deliveries_send", acks_late=True, soft_time_limit=240, time_limit=280)
def deliveries_send(delivery_ids: list[int]) -> int:
    """Send deliveries one after the other; each is claimed first, so a repeated task sends nothing twice."""
    sent = 0
    for delivery_id in delivery_ids:
        if services.delivery_send(delivery_id=delivery_id) is not None:
            sent += 1
    return sent


@shared_task(name="alerts.tasks.alerts_tick", acks_late=True)
def alerts_tick() -> dict[str, int]:
    """Every minute per tenant: dispatch anomalies and recover deliveries whose hand-off was lost, send
    due digests and held notifications, resolve quiet alerts."""
    return {
        "anomalies_recovered": services.anomalies_recover(),
        "digests": services.digests_flush(),
        "resolved": services.alerts_resolve_quiet(),
        "recovered": services.deliveries_recover(),
    }


@shared_task(name="alerts.tasks.feed_prune", acks_late=True)
def feed_prune() -> int:
    return services.feed_prune()
