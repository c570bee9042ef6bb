"""Usage per tenant and day: live counters in Redis, flushed exactly once into tenants.UsageCounter.

Redis hash `pulse:usage:<tenant_pk>:<YYYY-MM-DD>` (UTC day):
- `events_accepted`, `api_calls`: increments not yet flushed (services._count_usage, api_call_count);
- `flushed:<field>`: what has been moved to PostgreSQL, so "today's total" is one HMGET away
  (the plan-limit check on ingest never touches the database).

A flush moves the unflushed amounts into a pending record with a fresh token in one Lua script (atomic
against concurrent HINCRBYs), adds them to UsageCounter and writes a UsageFlush(token) row in the same
database transaction, then deletes the pending record. A crash before the commit leaves the pending
record, which the next flush applies; a crash after the commit leaves it too, but its token is already
in UsageFlush, so it is only deleted. Nothing is lost, nothing is counted twice.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from django.db import transaction
from django.db.models import F
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from pulse.lib.background import after_response_gathered
from pulse.lib.redis import get_redis

FIELDS = ("events_accepted", "api_calls")
KEY_TTL_SECONDS = 8 * 86400
_COUNTED_FLAG = "_pulse_api_call_counted"

# KEYS[1] = counters hash, KEYS[2] = pending flush hash; ARGV[1] = token, ARGV[2..] = fields.
# Moves every non-zero field into the pending hash and into `flushed:<field>`; returns the token, or
# nothing when there was nothing to move. A pending hash that already exists is never overwritten.
_MOVE_SCRIPT = """
if redis.call('EXISTS', KEYS[2]) == 1 then return redis.call('HGET', KEYS[2], 'token') end
local moved = 0
for i = 2, #ARGV do
  local field = ARGV[i]
  local value = tonumber(redis.call('HGET', KEYS[1], field) or '0')
  if value ~= 0 then
    redis.call('HINCRBY', KEYS[1], field, -value)
    redis.call('HINCRBY', KEYS[1], 'flushed:' .. field, value)
    redis.call('HSET', KEYS[2], field, value)
    moved = 1
  end
end
if moved == 0 then return false end
redis.call('HSET', KEYS[2], 'token', ARGV[1])
redis.call('EXPIRE', KEYS[2], 30 * 86400)
return ARGV[1]
"""


def usage_key(tenant_pk: int, day: date) -> str:
    return f"pulse:usage:{tenant_pk}:{day:%Y-%m-%d}"


def _pending_key(tenant_pk: int, day: date) -> str:
    return f"pulse:usage-flush:{tenant_pk}:{day:%Y-%m-%d}"


def _utc_day(now: datetime | None) -> date:
    return (now or timezone.now()).astimezone(UTC).date()


# ------------------------------------------------------------------ counting


def api_call_count(request: HttpRequest, *, now: datetime | None = None, later: bool = False) -> None:
    """Count one API call for the request's tenant (once per request, whoever calls it first);
    `later`: send the count after the answer (pulse.lib.background)."""
    tenant = getattr(request, "tenant", None)
    if tenant is None or getattr(request, _COUNTED_FLAG, False):
        return
    setattr(request, _COUNTED_FLAG, True)
    key = usage_key(tenant.pk, _utc_day(now))
    if later:
        after_response_gathered(usage_add_many, None, (key, "api_calls", 1))
    else:
        usage_add(key, "api_calls", 1)


def usage_add(key: str, field: str, amount: int) -> None:
    """Add to one of the day's counters (a `usage_key`)."""
    usage_add_many(None, [(key, field, amount)])


def usage_add_many(_: object, additions: list[tuple[str, str, int]]) -> None:
    """(usage key, counter, amount) additions, summed, in one pipeline (`after_response_gathered`)."""
    totals: dict[tuple[str, str], int] = {}
    for key, field, amount in additions:
        totals[key, field] = totals.get((key, field), 0) + amount
    pipe = get_redis().pipeline(transaction=False)
    for (key, field), amount in totals.items():
        pipe.hincrby(key, field, amount)
    for key in {key for key, _ in totals}:
        pipe.expire(key, KEY_TTL_SECONDS)
    pipe.execute()


class UsageMiddleware:
    """Counts every tenant request under /api/ (install after TenantResolutionMiddleware). Views that
    already call `api_call_count` are not counted twice. The count is sent after the answer
    (`pulse.lib.background`): a Redis round trip less on every call; a count lost with the process
    is one call not billed."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.path.startswith("/api/") and getattr(request, "tenant", None) is not None:
            api_call_count(request, later=True)
        return response


def usage_today(tenant_pk: int, *, now: datetime | None = None) -> dict[str, int]:
    """Today's totals (flushed + unflushed) from Redis."""
    names = [*FIELDS, *(f"flushed:{f}" for f in FIELDS)]
    values = get_redis().hmget(usage_key(tenant_pk, _utc_day(now)), names)
    raw = {name: int(value or 0) for name, value in zip(names, values, strict=True)}
    return {f: raw[f] + raw[f"flushed:{f}"] for f in FIELDS}


# ------------------------------------------------------------------ plan limits

_plan_cache: dict[str, tuple[float, int, int]] = {}
_PLAN_CACHE_SECONDS = 60.0


def _plan_limits(tenant: Any) -> tuple[int, int]:
    """(events_per_day, api_calls_per_day) of the tenant's plan, cached a minute per process."""
    code = tenant.plan_id
    cached = _plan_cache.get(code)
    if cached and cached[0] > time.monotonic():
        return cached[1], cached[2]
    from tenants.models import Plan

    plan = Plan.objects.filter(pk=code).values_list("events_per_day", "api_calls_per_day").first() or (0, 0)
    _plan_cache[code] = (time.monotonic() + _PLAN_CACHE_SECONDS, int(plan[0]), int(plan[1]))
    return int(plan[0]), int(plan[1])


def events_quota_exceeded(tenant: Any, *, now: datetime | None = None) -> str | None:
    """A message when the tenant has used up today's events (UTC day), else None (0 = unlimited).

    A soft limit: a request that starts under the limit is accepted whole, so a batch is never cut."""
    limit, _ = _plan_limits(tenant)
    if limit <= 0:
        return None
    used = usage_today(tenant.pk, now=now)["events_accepted"]
    if used < limit:
        return None
    return (f"Daily event limit reached: plan '{tenant.plan_id}' allows {limit:,} events per day and "
            f"{used:,} were accepted today (UTC). Ingestion resumes at 00:00 UTC, or upgrade the plan.")


# ------------------------------------------------------------------ flush


def _apply(tenant_pk: int, day: date, token: str, amounts: dict[str, int]) -> bool:
    """Add a pending delta to UsageCounter once. Returns False when it had been applied before."""
    from tenants.models import UsageCounter

    from .models import UsageFlush

    with transaction.atomic():
        _, created = UsageFlush.objects.get_or_create(
            token=token, defaults={"day": day, **{f: amounts.get(f, 0) for f in FIELDS}})
        if not created:
            return False
        counter, _ = UsageCounter.objects.get_or_create(tenant_id=tenant_pk, day=day)
        UsageCounter.objects.filter(pk=counter.pk).update(**{f: F(f) + amounts.get(f, 0) for f in FIELDS})
    return True


def usage_flush_day(tenant_pk: int, day: date, *, crash_after_commit: bool = False) -> dict[str, int]:
    """Move one tenant-day of Redis counters into PostgreSQL. Runs in the tenant's schema (UsageFlush
    lives there; UsageCounter is public). `crash_after_commit` is for tests only."""
    redis = get_redis()
    counters, pending = usage_key(tenant_pk, day), _pending_key(tenant_pk, day)
    flushed: dict[str, int] = dict.fromkeys(FIELDS, 0)
    for _ in range(2):  # first a pending record left by a crash, then the new delta
        token = redis.eval(_MOVE_SCRIPT, 2, counters, pending, uuid.uuid4().hex, *FIELDS)
        if not token:
            break
        record = {k.decode(): v.decode() for k, v in redis.hgetall(pending).items()}
        amounts = {f: int(record.get(f, 0)) for f in FIELDS}
        if _apply(tenant_pk, day, record["token"], amounts):
            for f in FIELDS:
                flushed[f] += amounts[f]
        if crash_after_commit:
            raise RuntimeError("simulated crash after the database commit")
        redis.delete(pending)
    return flushed


def usage_flush(*, tenant: Any) -> dict[str, int]:
    """Flush every day of this tenant that has Redis counters (today and the days not flushed yet)."""
    redis = get_redis()
    totals: dict[str, int] = dict.fromkeys(FIELDS, 0)
    days: set[date] = set()
    for pattern in (f"pulse:usage:{tenant.pk}:*", f"pulse:usage-flush:{tenant.pk}:*"):
        for key in redis.scan_iter(match=pattern, count=500):
            try:
                days.add(date.fromisoformat(key.decode().rsplit(":", 1)[1]))
            except ValueError:
                continue
    for day in sorted(days):
        for f, n in usage_flush_day(tenant.pk, day).items():
            totals[f] += n
    return totals
