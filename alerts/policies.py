"""Policy evaluation and time windows: pure functions (no Django), so the rules are testable alone.

A policy matches an anomaly when every condition it sets holds (empty conditions match everything).
Quiet hours are a daily window in the tenant's time zone; a window that crosses midnight ("22:00" to
"07:00") is understood as such."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

SEVERITY_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3}
FILTER_KEYS = {"detectors", "metrics", "entities", "directions", "dimensions", "min_score"}
QUIET_KEYS = {"start", "end", "allow_severity"}


class AnomalyLike(Protocol):
    kind: str
    severity: str
    metric: str
    entity: str
    direction: str
    score: float
    dimensions: dict[str, Any]
    detectors: dict[str, float]


class PolicyLike(Protocol):
    min_severity: str
    kinds: list[str]
    filters: dict[str, Any]


def severity_rank(severity: str) -> int:
    return SEVERITY_RANK.get(severity, 0)


def policy_matches(policy: PolicyLike, anomaly: AnomalyLike) -> bool:
    if severity_rank(anomaly.severity) < severity_rank(policy.min_severity):
        return False
    if policy.kinds and anomaly.kind not in policy.kinds:
        return False
    filters = policy.filters or {}
    if filters.get("detectors") and not set(filters["detectors"]) & set(anomaly.detectors or {}):
        return False
    if filters.get("metrics") and anomaly.metric not in filters["metrics"]:
        return False
    if filters.get("entities") and anomaly.entity not in filters["entities"]:
        return False
    if filters.get("directions") and anomaly.direction not in filters["directions"]:
        return False
    if filters.get("min_score") is not None and anomaly.score < float(filters["min_score"]):
        return False
    for key, wanted in (filters.get("dimensions") or {}).items():
        allowed = {str(v) for v in (wanted if isinstance(wanted, list) else [wanted])}
        value = (anomaly.dimensions or {}).get(key)
        if value is None or str(value) not in allowed:
            return False
    return True


def validate_filters(filters: Any) -> list[str]:
    """Readable problems with a policy's `filters` (empty list when valid)."""
    if filters in (None, {}):
        return []
    if not isinstance(filters, dict):
        return ["filters must be an object"]
    errors = [f"unknown filter '{k}' (known: {', '.join(sorted(FILTER_KEYS))})" for k in filters if k not in FILTER_KEYS]
    for key in ("detectors", "metrics", "entities", "directions"):
        value = filters.get(key)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            errors.append(f"{key} must be a list of strings")
    if filters.get("directions") and set(filters["directions"]) - {"up", "down"}:
        errors.append("directions may contain 'up' and 'down' only")
    dims = filters.get("dimensions")
    if dims is not None and not (isinstance(dims, dict) and all(
            isinstance(v, (str, int, float)) or (isinstance(v, list) and all(isinstance(x, (str, int, float)) for x in v))
            for v in dims.values())):
        errors.append("dimensions must map a dimension name to a value or a list of values")
    score = filters.get("min_score")
    if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float)) or not 0 <= score <= 1):
        errors.append("min_score must be a number between 0 and 1")
    return errors


def _parse_hhmm(value: Any) -> time:
    if not isinstance(value, str):
        raise ValueError("times must be 'HH:MM' strings")
    try:
        hours, minutes = value.split(":")
        return time(int(hours), int(minutes))
    except ValueError as exc:
        raise ValueError(f"'{value}' is not a time of day 'HH:MM'") from exc


def validate_quiet_hours(quiet: Any) -> list[str]:
    if quiet in (None, {}):
        return []
    if not isinstance(quiet, dict):
        return ["quiet_hours must be an object {start, end, allow_severity}"]
    errors = [f"unknown key '{k}'" for k in quiet if k not in QUIET_KEYS]
    try:
        start, end = _parse_hhmm(quiet.get("start")), _parse_hhmm(quiet.get("end"))
        if start == end:
            errors.append("start and end must differ")
    except ValueError as exc:
        errors.append(str(exc))
    allow = quiet.get("allow_severity")
    if allow is not None and allow not in SEVERITY_RANK:
        errors.append(f"allow_severity must be one of {', '.join(SEVERITY_RANK)}")
    return errors


def quiet_until(quiet: dict[str, Any] | None, now: datetime, tz: ZoneInfo) -> datetime | None:
    """When `now` falls in the quiet window, the (UTC) moment it ends; otherwise None."""
    if not quiet:
        return None
    start, end = _parse_hhmm(quiet["start"]), _parse_hhmm(quiet["end"])
    local = now.astimezone(tz)
    clock = local.time().replace(tzinfo=None)
    if start < end:
        if not start <= clock < end:
            return None
        end_day = local.date()
    else:  # crosses midnight
        if clock >= start:
            end_day = local.date() + timedelta(days=1)
        elif clock < end:
            end_day = local.date()
        else:
            return None
    # combine() with a ZoneInfo resolves DST gaps/folds the way the wall clock reads.
    return datetime.combine(end_day, end, tzinfo=tz).astimezone(UTC)


def quiet_allows(quiet: dict[str, Any] | None, severity: str) -> bool:
    """Whether a notification of this severity passes during quiet hours."""
    allow = (quiet or {}).get("allow_severity")
    return allow is not None and severity_rank(severity) >= severity_rank(allow)


def window_end(now: datetime, minutes: int) -> datetime:
    """End of the fixed `minutes` window containing `now` (UTC-aligned), so everything held in one
    window shares one send time and folds into one digest."""
    step = minutes * 60
    epoch = now.timestamp()
    return datetime.fromtimestamp((int(epoch // step) + 1) * step, tz=UTC)
