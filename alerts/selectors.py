"""Reads of the delivery layer."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Prefetch, Q, QuerySet

from .models import Alert, Channel, Delivery, FeedMessage, Policy, Snooze

DELIVERIES_PER_ALERT = 20


def channel_list() -> QuerySet[Channel]:
    return Channel.objects.order_by("id")


def policy_list() -> QuerySet[Policy]:
    return Policy.objects.prefetch_related("channels").order_by("id")


def alert_list(*, filters: dict[str, Any]) -> QuerySet[Alert]:
    """Alerts newest first with their deliveries (latest first). Filters: status, severity (at least),
    kind, fingerprint, metric, entity, channel (a delivery went to it), from/to (last seen)."""
    from .policies import SEVERITY_RANK

    qs = Alert.objects.all()
    if filters.get("status"):
        qs = qs.filter(status=filters["status"])
    if filters.get("severity"):
        wanted = [s for s, r in SEVERITY_RANK.items() if r >= SEVERITY_RANK[filters["severity"]]]
        qs = qs.filter(peak_severity__in=wanted)
    for key in ("kind", "fingerprint", "metric", "entity"):
        if filters.get(key):
            qs = qs.filter(**{key: filters[key]})
    if filters.get("channel"):
        qs = qs.filter(deliveries__channel_id=filters["channel"]).distinct()
    if filters.get("from"):
        qs = qs.filter(last_seen_at__gte=filters["from"])
    if filters.get("to"):
        qs = qs.filter(last_seen_at__lt=filters["to"])
    deliveries = Delivery.objects.select_related("channel").order_by("-id")
    return qs.select_related("last_anomaly").prefetch_related(Prefetch("deliveries", queryset=deliveries))


def snooze_list(*, include_inactive: bool, now: datetime) -> QuerySet[Snooze]:
    qs = Snooze.objects.order_by("-id")
    if not include_inactive:
        qs = qs.filter(cancelled_at__isnull=True, until__gt=now)
    return qs


def snooze_active_for(*, fingerprint: str = "", entity: str = "", now: datetime) -> Snooze | None:
    cond = Q()
    if fingerprint:
        cond |= Q(fingerprint=fingerprint)
    if entity:
        cond |= Q(entity=entity)
    if not cond:
        return None
    return Snooze.objects.filter(cond, cancelled_at__isnull=True, until__gt=now).order_by("-until").first()


def feed_since(*, last_id: int, limit: int = 1000) -> list[dict[str, Any]]:
    """Feed messages after `last_id`, oldest first (what a reconnecting client missed)."""
    rows = FeedMessage.objects.filter(pk__gt=last_id).order_by("id")[:limit]
    return [row.envelope() for row in rows]


def feed_last_id() -> int:
    row = FeedMessage.objects.order_by("-id").only("id").first()
    return row.pk if row else 0
