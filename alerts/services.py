"""Writes of the delivery layer: anomalies become alerts, alerts become deliveries, deliveries are sent.

Noise control, in the order it is applied to each (alert, channel):
  snooze (fingerprint or entity)  → nothing sent, the alert still counts (`suppressed_count`)
  cooldown (fingerprint+channel)  → nothing new sent; the next notification carries the count.
                                    A rise in peak severity breaks through.
  quiet hours (policy, tenant tz) → held until the window ends, then sent (alone or as a digest)
  digest mode (policy)            → held until the digest window ends
  rate cap (channel, per hour)    → held and folded into the next digest
Held deliveries are rows like any other (status `held`), so nothing is dropped without a trace.

Only this module pushes to the live feed, and only after commit."""

from __future__ import annotations

import json
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from scoring.models import Anomaly

from . import rendering
from .config import AlertsConfig
from .consumers import feed_group
from .models import Alert, AlertAnomaly, Channel, Delivery, FeedMessage, Policy, Snooze
from .policies import policy_matches, quiet_allows, quiet_until, severity_rank, window_end
from .transports import TransportError, transport_class, transport_for

log = logging.getLogger(__name__)

# A worker that claimed a delivery and vanished gives it up after this long (longer than any send:
# 3 attempts × 10 s timeout + backoff).
CLAIM_LEASE = timedelta(minutes=5)
# An anomaly not dispatched this long after it was recorded lost its hand-off (anomalies_recover).
RECOVER_AFTER = timedelta(minutes=2)
RETRY_BASE = timedelta(seconds=30)
RETRY_MAX = timedelta(minutes=15)
SEND_CHUNK = 50
DIGEST_MAX_ITEMS = 100
RATE_WINDOW = timedelta(hours=1)
RATE_COUNTED_KINDS = (Delivery.Kind.ALERT, Delivery.Kind.RESOLVED, Delivery.Kind.DIGEST)


# ----------------------------------------------------------------------------- tenant context

@dataclass
class TenantContext:
    slug: str
    schema: str
    tz: ZoneInfo
    config: AlertsConfig
    base_url: str

    @classmethod
    def load(cls) -> TenantContext:
        from tenants.config import tenant_section
        from tenants.models import Tenant

        tenant = getattr(connection, "tenant", None)
        if not isinstance(tenant, Tenant):  # inside schema_context (Celery) django-tenants sets a stand-in
            tenant = Tenant.objects.get(schema_name=connection.schema_name)
        return cls(slug=tenant.slug, schema=tenant.schema_name, tz=ZoneInfo(tenant.timezone),
                   config=tenant_section(tenant, "alerts"), base_url=settings.PULSE_BASE_URL)


# ----------------------------------------------------------------------------- live feed

def feed_publish_many(*, messages: Sequence[tuple[str, dict[str, Any]]]) -> list[FeedMessage]:
    """Persist feed messages (ids increase) and push them to the tenant's websocket group after commit."""
    if not messages:
        return []
    rows = FeedMessage.objects.bulk_create([FeedMessage(type=kind, payload=data) for kind, data in messages])
    envelopes = [row.envelope() for row in rows]
    schema = connection.schema_name
    transaction.on_commit(lambda: _feed_push(schema, envelopes))
    return rows


def feed_publish(*, type: str, data: dict[str, Any]) -> FeedMessage:  # noqa: A002 (mirrors the message field)
    return feed_publish_many(messages=[(type, data)])[0]


_FEED_PUSH_CHUNK = 200  # well under the channel layer's message size limit for typical envelopes


def _feed_push(schema: str, envelopes: list[dict[str, Any]]) -> None:
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if layer is None:
        return
    group = feed_group(schema)

    async def push() -> None:
        # One channel-layer message per chunk of a dispatch (each group_send is a Redis round trip
        # per subscriber); clients still get one websocket frame per message, in id order.
        for start in range(0, len(envelopes), _FEED_PUSH_CHUNK):
            await layer.group_send(group, {"type": "feed.messages",
                                           "payloads": envelopes[start:start + _FEED_PUSH_CHUNK]})

    try:
        async_to_sync(push)()
    except Exception:  # the messages are stored: clients catch up with `since`
        log.exception("live feed push failed for %s", schema)


# ----------------------------------------------------------------------------- planning deliveries

@dataclass
class DispatchResult:
    anomalies: int = 0
    alerts_opened: int = 0
    alerts_updated: int = 0
    pending: list[int] = field(default_factory=list)
    held: int = 0
    cooled_down: int = 0
    snoozed: int = 0


class _Planner:
    """Decides, per (alert, channel), whether to send now, hold for a digest, or stay quiet."""

    def __init__(self, ctx: TenantContext, now: datetime, result: DispatchResult) -> None:
        self.ctx = ctx
        self.now = now
        self.result = result
        self.rows: list[Delivery] = []
        self._rate: dict[int, int] = {}

    def _recent_count(self, channel: Channel) -> int:
        if channel.pk not in self._rate:
            self._rate[channel.pk] = Delivery.objects.filter(
                channel=channel, created_at__gte=self.now - RATE_WINDOW, kind__in=RATE_COUNTED_KINDS, hold_reason="",
            ).exclude(status__in=[Delivery.Status.CANCELLED, Delivery.Status.HELD, Delivery.Status.DIGESTED]).count()
        return self._rate[channel.pk]

    def _in_cooldown(self, channel: Channel, alert: Alert, cooldown: int) -> bool:
        if cooldown <= 0:
            return False
        last = (Delivery.objects.filter(channel=channel, fingerprint=alert.fingerprint,
                                        kind=Delivery.Kind.ALERT, created_at__gte=self.now - timedelta(seconds=cooldown))
                .exclude(status=Delivery.Status.CANCELLED).order_by("-created_at").only("severity").first())
        # A rise in severity is news: it breaks through the cooldown.
        return last is not None and severity_rank(alert.peak_severity) <= severity_rank(last.severity)

    def plan(self, *, alert: Alert | None, channel: Channel, policy: Policy | None, kind: str, event: str,
             payload: dict[str, Any], severity: str, check_cooldown: bool = True) -> Delivery | None:
        cooldown = (policy.cooldown_seconds if policy and policy.cooldown_seconds is not None
                    else self.ctx.config.cooldown_seconds)
        if check_cooldown and alert is not None and self._in_cooldown(channel, alert, cooldown):
            self.result.cooled_down += 1
            return None
        hold_reason, scheduled = "", None
        quiet = policy.quiet_hours if policy else None
        until = quiet_until(quiet, self.now, self.ctx.tz)
        if until is not None and not quiet_allows(quiet, severity):
            hold_reason, scheduled = "quiet_hours", until
        elif policy is not None and policy.digest_minutes:
            hold_reason, scheduled = "digest", window_end(self.now, policy.digest_minutes)
        elif self._recent_count(channel) >= self.ctx.config.rate_limit_per_hour:
            hold_reason, scheduled = "rate_limited", window_end(self.now, self.ctx.config.digest_interval_minutes)
        else:
            self._rate[channel.pk] = self._recent_count(channel) + 1
        row = _new_delivery(channel=channel, policy=policy, alert=alert, kind=kind, event=event, payload=payload,
                            severity=severity, now=self.now,
                            status=Delivery.Status.HELD if hold_reason else Delivery.Status.PENDING,
                            hold_reason=hold_reason, scheduled_for=scheduled)
        self.rows.append(row)
        if hold_reason:
            self.result.held += 1
        return row

    def save(self) -> list[int]:
        created = Delivery.objects.bulk_create(self.rows)
        pending = [d.pk for d in created if d.status == Delivery.Status.PENDING]
        deliveries_enqueue(ids=pending)
        self.result.pending.extend(pending)
        return pending


def _new_delivery(*, channel: Channel, policy: Policy | None, alert: Alert | None, kind: str, event: str,
                  payload: dict[str, Any], severity: str, now: datetime, status: str = Delivery.Status.PENDING,
                  hold_reason: str = "", scheduled_for: datetime | None = None) -> Delivery:
    delivery = Delivery(channel=channel, policy=policy, alert=alert, kind=kind, event=event,
                        fingerprint=alert.fingerprint if alert else payload.get("fingerprint", ""),
                        severity=severity, status=status, hold_reason=hold_reason, scheduled_for=scheduled_for,
                        created_at=now)
    # The delivery id inside the body too, for receivers that log bodies rather than headers.
    delivery.payload = {"id": str(delivery.key), **payload}
    return delivery


def deliveries_enqueue(*, ids: Sequence[int], countdown: float | None = None) -> None:
    """Hand deliveries to Celery after the surrounding transaction commits."""
    if not ids:
        return
    chunks = [list(ids[i:i + SEND_CHUNK]) for i in range(0, len(ids), SEND_CHUNK)]

    def enqueue() -> None:
        from .tasks import deliveries_send

        for chunk in chunks:
            if countdown:
                deliveries_send.apply_async(args=[chunk], countdown=countdown)
            else:
                deliveries_send.delay(chunk)

    transaction.on_commit(enqueue)


# ----------------------------------------------------------------------------- anomalies → alerts

def _claim_anomalies(anomaly_ids: Iterable[int], now: datetime) -> list[int]:
    """Mark anomalies as dispatched; returns only those no earlier run claimed (idempotent dispatch)."""
    ids = sorted({int(i) for i in anomaly_ids})
    if not ids:
        return []
    table = AlertAnomaly._meta.db_table
    anomaly_table = Anomaly._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f'INSERT INTO "{table}" (anomaly_id, created_at) '
            f'SELECT a.id, %s FROM "{anomaly_table}" a WHERE a.id = ANY(%s) '
            f"ON CONFLICT (anomaly_id) DO NOTHING RETURNING anomaly_id",
            [now, ids],
        )
        return sorted(row[0] for row in cursor.fetchall())


def _peak(anomalies: Sequence[Anomaly]) -> Anomaly:
    # The most severe anomaly of the batch speaks for it; the latest wins ties.
    return max(anomalies, key=lambda a: (severity_rank(a.severity), a.occurred_at, a.pk))


def _open_alerts_locked(fingerprints: Sequence[str]) -> dict[str, Alert]:
    # Locked in fingerprint order, so concurrent dispatches never wait on each other in a cycle.
    rows = Alert.objects.select_for_update().filter(fingerprint__in=fingerprints, status=Alert.Status.OPEN)
    return {alert.fingerprint: alert for alert in rows.order_by("fingerprint")}


def _alerts_absorb(*, groups: dict[str, list[Anomaly]], now: datetime) -> dict[str, tuple[Alert, str]]:
    """Open or update the open alert of each fingerprint with its new anomalies, in a fixed number of
    statements whatever the number of groups (a batch of fraud anomalies is mostly one alert per
    customer). Returns fingerprint -> (alert, event)."""
    fingerprints = sorted(groups)
    found = _open_alerts_locked(fingerprints)
    missing = [fp for fp in fingerprints if fp not in found]
    if missing:
        fresh = []
        for fp in missing:
            group = groups[fp]
            top, latest = _peak(group), max(group, key=lambda a: (a.occurred_at, a.pk))
            fresh.append(Alert(
                fingerprint=fp, title=rendering.anomaly_title(top)[:300], kind=top.kind, metric=top.metric,
                entity=top.entity, severity=latest.severity, peak_severity=top.severity, count=0,
                first_anomaly=min(group, key=lambda a: a.pk), opened_at=now, last_seen_at=now))
        # Another worker may open one of them at the same moment: its row wins, ours is skipped, and
        # the anomalies join its alert (as an update: its count is no longer 0 once it committed).
        Alert.objects.bulk_create(fresh, ignore_conflicts=True)
        found.update(_open_alerts_locked(missing))
    out: dict[str, tuple[Alert, str]] = {}
    for fp in fingerprints:
        group, alert = groups[fp], found[fp]
        latest, top = max(group, key=lambda a: (a.occurred_at, a.pk)), _peak(group)
        if alert.count == 0:
            event = "alert.opened"
        elif severity_rank(top.severity) > severity_rank(alert.peak_severity):
            event = "alert.escalated"
        else:
            event = "alert.updated"
        if severity_rank(top.severity) > severity_rank(alert.peak_severity):
            alert.peak_severity = top.severity
        alert.count += len(group)
        alert.severity = latest.severity
        alert.last_anomaly = latest
        alert.last_seen_at = now
        alert.updated_at = now
        alert.latest = {"expected": latest.expected, "observed": latest.observed, "score": latest.score,
                        "impact": latest.impact, "occurred_at": latest.occurred_at.isoformat(),
                        "direction": latest.direction}
        out[fp] = (alert, event)
    _alerts_save([alert for alert, _ in out.values()])
    links = [(a.pk, alert.pk) for fp, (alert, _) in out.items() for a in groups[fp]]
    with connection.cursor() as cursor:
        cursor.execute(
            f'UPDATE "{AlertAnomaly._meta.db_table}" l SET alert_id = v.alert '
            "FROM unnest(%s::bigint[], %s::bigint[]) AS v(anomaly, alert) WHERE l.anomaly_id = v.anomaly",
            [[a for a, _ in links], [b for _, b in links]])
    return out


def _alerts_save(alerts: Sequence[Alert]) -> None:
    """The fields an absorb changes, for every alert in one UPDATE."""
    latest_field = Alert._meta.get_field("latest")
    with connection.cursor() as cursor:
        cursor.execute(
            f'UPDATE "{Alert._meta.db_table}" a SET count = v.count, severity = v.severity, '
            "peak_severity = v.peak, last_anomaly_id = v.last, last_seen_at = v.seen, latest = v.latest::jsonb, "
            "updated_at = v.seen "
            "FROM unnest(%s::bigint[], %s::integer[], %s::text[], %s::text[], %s::bigint[], %s::timestamptz[], "
            "%s::text[]) AS v(id, count, severity, peak, last, seen, latest) WHERE a.id = v.id",
            [[a.pk for a in alerts], [a.count for a in alerts], [a.severity for a in alerts],
             [a.peak_severity for a in alerts], [a.last_anomaly_id for a in alerts],
             [a.last_seen_at for a in alerts],
             [json.dumps(a.latest, cls=latest_field.encoder) for a in alerts]])


def _active_snoozes(now: datetime) -> list[Snooze]:
    return list(Snooze.objects.filter(cancelled_at__isnull=True, until__gt=now))


def _snooze_for(snoozes: Sequence[Snooze], alert: Alert) -> Snooze | None:
    for snooze in snoozes:
        if (snooze.fingerprint and snooze.fingerprint == alert.fingerprint) or (
                snooze.entity and snooze.entity == alert.entity):
            return snooze
    return None


def _routes(policies: Sequence[Policy], anomaly: Anomaly) -> list[tuple[Channel, Policy]]:
    """Enabled channels of the matching policies; a channel reached by several policies gets one
    notification, governed by the first policy (lowest id)."""
    seen: dict[int, tuple[Channel, Policy]] = {}
    for policy in policies:
        if not policy_matches(policy, anomaly):
            continue
        for channel in policy.channels.all():
            if channel.is_enabled and channel.pk not in seen:
                seen[channel.pk] = (channel, policy)
    return list(seen.values())


def alerts_dispatch(*, anomaly_ids: Sequence[int], now: datetime | None = None) -> DispatchResult:
    """Group new anomalies into alerts, push them to the live feed and plan notifications."""
    now = now or timezone.now()
    result = DispatchResult()
    ctx = TenantContext.load()
    policies = list(Policy.objects.filter(enabled=True, notify_anomalies=True).prefetch_related("channels"))
    with transaction.atomic():
        claimed = _claim_anomalies(anomaly_ids, now)
        anomalies = list(Anomaly.objects.filter(pk__in=claimed).order_by("id"))
        if not anomalies:
            return result
        result.anomalies = len(anomalies)
        feed: list[tuple[str, dict[str, Any]]] = [
            ("anomaly.created", rendering.anomaly_data(a, base_url=ctx.base_url)) for a in anomalies]
        groups: dict[str, list[Anomaly]] = defaultdict(list)
        for anomaly in anomalies:
            groups[anomaly.fingerprint or f"anomaly:{anomaly.pk}"].append(anomaly)
        snoozes = _active_snoozes(now)
        planner = _Planner(ctx, now, result)
        absorbed = _alerts_absorb(groups=groups, now=now)
        for fingerprint in sorted(groups):
            group = groups[fingerprint]
            alert, event = absorbed[fingerprint]
            if event == "alert.opened":
                result.alerts_opened += 1
            else:
                result.alerts_updated += 1
            feed.append((event, rendering.alert_data(alert)))
            if _snooze_for(snoozes, alert) is not None:
                Alert.objects.filter(pk=alert.pk).update(suppressed_count=F("suppressed_count") + len(group))
                result.snoozed += 1
                continue
            top = _peak(group)
            routes = _routes(policies, top)
            if not routes:
                continue
            payload = rendering.alert_payload(alert=alert, anomaly=top, event=event, tenant_slug=ctx.slug,
                                              tz=ctx.tz, base_url=ctx.base_url)
            for channel, policy in routes:
                planner.plan(alert=alert, channel=channel, policy=policy, kind=Delivery.Kind.ALERT, event=event,
                             payload=payload, severity=alert.peak_severity)
        feed_publish_many(messages=feed)
        planner.save()
    return result


# ----------------------------------------------------------------------------- lifecycle (beat)

def alerts_resolve_quiet(*, now: datetime | None = None) -> int:
    """Resolve open alerts that saw no anomaly for the tenant's quiet period; tell the channels that
    were told about them (unless snoozed or the policy opts out)."""
    now = now or timezone.now()
    ctx = TenantContext.load()
    cutoff = now - timedelta(minutes=ctx.config.resolve_after_minutes)
    result = DispatchResult()
    with transaction.atomic():
        alerts = list(Alert.objects.select_for_update(skip_locked=True, of=("self",))
                      .filter(status=Alert.Status.OPEN, last_seen_at__lt=cutoff).select_related("last_anomaly"))
        if not alerts:
            return 0
        snoozes = _active_snoozes(now)
        planner = _Planner(ctx, now, result)
        feed: list[tuple[str, dict[str, Any]]] = []
        for alert in alerts:
            alert.status = Alert.Status.RESOLVED
            alert.resolved_at = now
            alert.save(update_fields=["status", "resolved_at", "updated_at"])
            feed.append(("alert.resolved", rendering.alert_data(alert)))
            if _snooze_for(snoozes, alert) is not None:
                continue
            told = (Delivery.objects.filter(alert=alert, kind=Delivery.Kind.ALERT)
                    .exclude(status=Delivery.Status.CANCELLED).select_related("channel", "policy")
                    .order_by("channel_id", "id").distinct("channel_id"))
            payload = None
            for previous in told:
                if not previous.channel.is_enabled or (previous.policy and not previous.policy.notify_resolved):
                    continue
                payload = payload or rendering.alert_payload(
                    alert=alert, anomaly=alert.last_anomaly, event="alert.resolved", tenant_slug=ctx.slug,
                    tz=ctx.tz, base_url=ctx.base_url)
                planner.plan(alert=alert, channel=previous.channel, policy=previous.policy,
                             kind=Delivery.Kind.RESOLVED, event="alert.resolved", payload=payload,
                             severity=alert.severity, check_cooldown=False)
        feed_publish_many(messages=feed)
        planner.save()
    return len(alerts)


def digests_flush(*, now: datetime | None = None) -> int:
    """Send held deliveries that are due: alone when only one waits for a channel, else one digest."""
    now = now or timezone.now()
    ctx = TenantContext.load()
    sent = 0
    with transaction.atomic():
        due = list(Delivery.objects.select_for_update(skip_locked=True, of=("self",))
                   .filter(status=Delivery.Status.HELD, scheduled_for__lte=now)
                   .select_related("channel").order_by("id"))
        by_channel: dict[int, list[Delivery]] = defaultdict(list)
        for row in due:
            by_channel[row.channel_id].append(row)
        pending: list[int] = []
        for rows in by_channel.values():
            channel = rows[0].channel
            ids = [r.pk for r in rows]
            if not channel.is_enabled:
                Delivery.objects.filter(pk__in=ids).update(
                    status=Delivery.Status.CANCELLED, error=f"channel disabled: {channel.disabled_reason}"[:2000])
                continue
            if len(rows) == 1:
                Delivery.objects.filter(pk=ids[0]).update(status=Delivery.Status.PENDING)
                pending.append(ids[0])
                sent += 1
                continue
            reason = Counter(r.hold_reason for r in rows).most_common(1)[0][0]
            items = [r.payload for r in rows[-DIGEST_MAX_ITEMS:]]
            payload = rendering.digest_payload(items=items, reason=reason, tenant_slug=ctx.slug)
            payload["omitted"] = max(0, len(rows) - DIGEST_MAX_ITEMS)
            top = max((r.severity for r in rows), key=severity_rank)
            digest = _new_delivery(channel=channel, policy=None, alert=None, kind=Delivery.Kind.DIGEST,
                                   event="digest", payload=payload, severity=top, now=now)
            digest.save()
            Delivery.objects.filter(pk__in=ids).update(status=Delivery.Status.DIGESTED, digest=digest)
            pending.append(digest.pk)
            sent += 1
        deliveries_enqueue(ids=pending)
    return sent


def deliveries_recover(*, now: datetime | None = None) -> int:
    """Re-enqueue deliveries whose hand-off was lost (process died between commit and enqueue) or whose
    worker died mid-send. Sending twice is prevented by the claim in `delivery_send`."""
    now = now or timezone.now()
    stale = now - timedelta(minutes=2)
    ids = list(Delivery.objects.filter(
        Q(status=Delivery.Status.PENDING, next_attempt_at__isnull=True, created_at__lt=stale)
        | Q(status=Delivery.Status.PENDING, next_attempt_at__lt=stale)
        | Q(status=Delivery.Status.SENDING, claimed_at__lt=now - CLAIM_LEASE),
    ).exclude(kind=Delivery.Kind.TEST).order_by("id").values_list("id", flat=True)[:1000])
    deliveries_enqueue(ids=ids)
    return len(ids)


def anomalies_recover(*, now: datetime | None = None) -> int:
    """Dispatch the anomalies whose hand-off was lost: the process died between their commit and the
    Celery message, or before a hand-off deferred until after the answer left (the fraud-check's).
    Recorded between a day and RECOVER_AFTER ago and never claimed by a dispatch; dispatching is
    idempotent (the claim), so a message that was only late does no harm."""
    now = now or timezone.now()
    ids = list(Anomaly.objects.filter(detected_at__lt=now - RECOVER_AFTER, detected_at__gte=now - timedelta(days=1))
               .exclude(pk__in=AlertAnomaly.objects.values("anomaly_id"))
               .order_by("id").values_list("id", flat=True)[:1000])
    if ids:
        alerts_dispatch(anomaly_ids=ids, now=now)
    return len(ids)


def feed_prune(*, now: datetime | None = None) -> int:
    now = now or timezone.now()
    hours = TenantContext.load().config.feed_retention_hours
    deleted, _ = FeedMessage.objects.filter(created_at__lt=now - timedelta(hours=hours)).delete()
    return deleted


# ----------------------------------------------------------------------------- sending

def _retry_delay(attempts: int) -> timedelta:
    return min(RETRY_MAX, RETRY_BASE * (2 ** max(0, attempts - 1)))


def delivery_send(*, delivery_id: int, now: datetime | None = None, allow_retry: bool = True) -> Delivery | None:
    """Send one delivery if nobody else holds it. Returns the updated row, or None when it was not ours.

    The claim (pending → sending, attempts+1) is committed before the request goes out. A worker that dies
    mid-send leaves the row `sending`; after CLAIM_LEASE it is claimed again and re-sent with the same
    X-Pulse-Delivery id, so webhook receivers can drop the repeat."""
    now = now or timezone.now()
    claimable = Q(status=Delivery.Status.PENDING) | Q(status=Delivery.Status.SENDING, claimed_at__lt=now - CLAIM_LEASE)
    claimed = Delivery.objects.filter(claimable, pk=delivery_id).update(
        status=Delivery.Status.SENDING, claimed_at=now, attempts=F("attempts") + 1)
    if not claimed:
        return None
    delivery = Delivery.objects.select_related("channel").get(pk=delivery_id)
    channel = delivery.channel
    if not channel.is_enabled and delivery.kind != Delivery.Kind.TEST:
        Delivery.objects.filter(pk=delivery.pk).update(
            status=Delivery.Status.CANCELLED, attempts=F("attempts") - 1,
            error=f"channel disabled: {channel.disabled_reason}"[:2000])
        delivery.refresh_from_db()
        return delivery
    started = time.perf_counter()
    try:
        outcome = transport_for(channel).notify(delivery)
    except TransportError as exc:
        _record_failure(delivery, exc, duration_ms=(time.perf_counter() - started) * 1000, allow_retry=allow_retry)
    else:
        _record_success(delivery, response_code=outcome.response_code, extra_attempts=outcome.attempts - 1,
                        duration_ms=(time.perf_counter() - started) * 1000)
    delivery.refresh_from_db()
    return delivery


def _record_success(delivery: Delivery, *, response_code: int | None, extra_attempts: int, duration_ms: float) -> None:
    Delivery.objects.filter(pk=delivery.pk).update(
        status=Delivery.Status.SENT, sent_at=timezone.now(), response_code=response_code, error="",
        duration_ms=round(duration_ms, 2), attempts=F("attempts") + max(0, extra_attempts), next_attempt_at=None)


def _record_failure(delivery: Delivery, exc: TransportError, *, duration_ms: float, allow_retry: bool) -> None:
    attempts = delivery.attempts + max(0, exc.attempts - 1)
    fields: dict[str, Any] = {"response_code": exc.response_code, "error": exc.message[:2000],
                              "duration_ms": round(duration_ms, 2), "attempts": attempts}
    is_test = delivery.kind == Delivery.Kind.TEST
    max_attempts = TenantContext.load().config.delivery_max_attempts
    if not exc.permanent and allow_retry and not is_test and attempts < max_attempts:
        delay = _retry_delay(attempts)
        Delivery.objects.filter(pk=delivery.pk).update(status=Delivery.Status.PENDING,
                                                       next_attempt_at=timezone.now() + delay, **fields)
        deliveries_enqueue(ids=[delivery.pk], countdown=delay.total_seconds())
        return
    Delivery.objects.filter(pk=delivery.pk).update(status=Delivery.Status.FAILED, next_attempt_at=None, **fields)
    if exc.permanent and not is_test:
        channel_disable(channel=delivery.channel,
                        reason=f"delivery #{delivery.pk} failed permanently: {exc.message}"[:1000])


# ----------------------------------------------------------------------------- channels

def channel_create(*, kind: str, name: str, config: dict[str, Any], is_enabled: bool = True) -> Channel:
    cleaned = transport_class(kind).clean_config(config)
    return Channel.objects.create(kind=kind, name=name, config=cleaned, is_enabled=is_enabled)


def channel_update(*, channel: Channel, name: str | None = None, config: dict[str, Any] | None = None,
                   is_enabled: bool | None = None) -> Channel:
    cls = transport_class(channel.kind)
    fields = ["updated_at"]
    if name is not None:
        channel.name = name
        fields.append("name")
    if config is not None:
        channel.config = cls.clean_config(config, previous=channel.config)
        fields.append("config")
    if is_enabled is True and not channel.is_enabled:
        cls.check_targets(channel.config)  # the rules may have changed since it was saved
        channel.is_enabled, channel.disabled_reason, channel.disabled_at = True, "", None
        fields += ["is_enabled", "disabled_reason", "disabled_at"]
    elif is_enabled is False and channel.is_enabled:
        channel.is_enabled, channel.disabled_reason, channel.disabled_at = False, "disabled by a user", timezone.now()
        fields += ["is_enabled", "disabled_reason", "disabled_at"]
    channel.save(update_fields=fields)
    return channel


def channel_disable(*, channel: Channel, reason: str) -> None:
    Channel.objects.filter(pk=channel.pk, is_enabled=True).update(
        is_enabled=False, disabled_reason=reason, disabled_at=timezone.now(), updated_at=timezone.now())
    channel.is_enabled, channel.disabled_reason = False, reason
    log.warning("alert channel %s disabled: %s", channel.pk, reason)


def channel_test(*, channel: Channel) -> Delivery:
    """Send a test notification now, in this request, and return the delivery with its outcome. A failed
    test does not disable the channel: the person testing sees the error instead."""
    ctx = TenantContext.load()
    delivery = _new_delivery(channel=channel, policy=None, alert=None, kind=Delivery.Kind.TEST, event="test",
                             payload=rendering.test_payload(channel_name=channel.name, tenant_slug=ctx.slug),
                             severity="low", now=timezone.now())
    delivery.save()
    return delivery_send(delivery_id=delivery.pk, allow_retry=False) or delivery


# ----------------------------------------------------------------------------- policies

POLICY_FIELDS = ("name", "enabled", "notify_anomalies", "min_severity", "kinds", "filters", "quiet_hours",
                 "cooldown_seconds", "digest_minutes", "notify_resolved", "notify_order_status", "order_statuses")


def policy_create(*, channels: Sequence[Channel] = (), **fields: Any) -> Policy:
    policy = Policy.objects.create(**{k: v for k, v in fields.items() if k in POLICY_FIELDS})
    policy.channels.set(channels)
    return policy


def policy_update(*, policy: Policy, channels: Sequence[Channel] | None = None, **fields: Any) -> Policy:
    changed = [k for k in fields if k in POLICY_FIELDS]
    for key in changed:
        setattr(policy, key, fields[key])
    policy.save(update_fields=[*changed, "updated_at"])
    if channels is not None:
        policy.channels.set(channels)
    return policy


# ----------------------------------------------------------------------------- snoozes

def snooze_create(*, until: datetime, created_by: str, fingerprint: str = "", entity: str = "",
                  reason: str = "") -> Snooze:
    if not fingerprint and not entity:
        raise ValueError("a snooze needs a fingerprint or an entity")
    return Snooze.objects.create(fingerprint=fingerprint, entity=entity, until=until, reason=reason,
                                 created_by=created_by[:150])


def snooze_cancel(*, snooze: Snooze) -> Snooze:
    if snooze.cancelled_at is None:
        snooze.cancelled_at = timezone.now()
        snooze.save(update_fields=["cancelled_at"])
    return snooze


# ----------------------------------------------------------------------------- order status

def order_status_notify(*, changes: list[dict[str, Any]]) -> None:
    """Send order status changes to the channels of policies subscribed to them (`notify_order_status`,
    optionally only some `order_statuses`). Machine-to-machine: no cooldown, quiet hours or rate cap;
    receivers can drop repeats by X-Pulse-Delivery or by the change's event_id."""
    if not changes:
        return
    policies = list(Policy.objects.filter(enabled=True, notify_order_status=True).prefetch_related("channels"))
    if not policies:
        return
    ctx = TenantContext.load()
    now = timezone.now()
    rows: list[Delivery] = []
    for change in changes:
        reached: set[int] = set()
        payload: dict[str, Any] | None = None
        for policy in policies:
            if policy.order_statuses and change.get("status") not in policy.order_statuses:
                continue
            for channel in policy.channels.all():
                if not channel.is_enabled or channel.pk in reached:
                    continue
                reached.add(channel.pk)
                payload = payload or rendering.order_status_payload(change=change, tenant_slug=ctx.slug, tz=ctx.tz)
                row = _new_delivery(channel=channel, policy=policy, alert=None, kind=Delivery.Kind.ORDER_STATUS,
                                    event="order.status_changed", payload=payload, severity="low", now=now)
                row.fingerprint = f"order:{change.get('order_id')}"[:200]
                rows.append(row)
    if not rows:
        return
    with transaction.atomic():
        created = Delivery.objects.bulk_create(rows)
        deliveries_enqueue(ids=[d.pk for d in created])
