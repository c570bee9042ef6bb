"""Pure policy rules: matching, validation, quiet hours across midnight and time zones, windows."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from alerts.policies import (
    policy_matches,
    quiet_allows,
    quiet_until,
    validate_filters,
    validate_quiet_hours,
    window_end,
)

UTC = UTC


def _anomaly(**kw):  # type: ignore[no-untyped-def]
    base = dict(kind="kpi", severity="high", metric="revenue", entity="", direction="down", score=0.9,
                dimensions={"channel": "email"}, detectors={"robust_z": 0.9, "prophet": 0.4})
    base.update(kw)
    return SimpleNamespace(**base)


def _policy(**kw):  # type: ignore[no-untyped-def]
    base = dict(min_severity="low", kinds=[], filters={})
    base.update(kw)
    return SimpleNamespace(**base)


def test_empty_policy_matches_everything() -> None:
    assert policy_matches(_policy(), _anomaly(severity="low"))


def test_each_condition_can_exclude() -> None:
    a = _anomaly()
    assert not policy_matches(_policy(min_severity="critical"), a)
    assert not policy_matches(_policy(kinds=["transaction"]), a)
    assert policy_matches(_policy(filters={"detectors": ["prophet"]}), a)
    assert not policy_matches(_policy(filters={"detectors": ["iforest"]}), a)
    assert not policy_matches(_policy(filters={"entities": ["c1"]}), a)
    assert not policy_matches(_policy(filters={"min_score": 0.95}), a)
    assert policy_matches(_policy(filters={"dimensions": {"channel": "email"}}), a)
    assert not policy_matches(_policy(filters={"dimensions": {"store": "s1"}}), a)


def test_filter_and_quiet_hours_validation() -> None:
    assert validate_filters({"metrics": ["revenue"], "dimensions": {"channel": ["a", "b"]}, "min_score": 0.5}) == []
    assert validate_filters({"metric": ["x"]})[0].startswith("unknown filter 'metric'")
    assert validate_filters({"directions": ["sideways"]}) and validate_filters({"min_score": 3})
    assert validate_quiet_hours({"start": "22:00", "end": "07:00"}) == []
    assert validate_quiet_hours({"start": "25:00", "end": "07:00"})
    assert validate_quiet_hours({"start": "07:00", "end": "07:00"})
    assert validate_quiet_hours({"start": "22:00", "end": "07:00", "allow_severity": "urgent"})


def test_quiet_hours_across_midnight_in_tenant_time() -> None:
    la = ZoneInfo("America/Los_Angeles")
    quiet = {"start": "22:00", "end": "07:00"}
    # 06:30 UTC on 3 March = 22:30 PST on 2 March: quiet until 07:00 PST on 3 March = 15:00 UTC.
    assert quiet_until(quiet, datetime(2025, 3, 3, 6, 30, tzinfo=UTC), la) == datetime(2025, 3, 3, 15, 0, tzinfo=UTC)
    # 13:00 UTC = 05:00 PST: still quiet, same end.
    assert quiet_until(quiet, datetime(2025, 3, 3, 13, 0, tzinfo=UTC), la) == datetime(2025, 3, 3, 15, 0, tzinfo=UTC)
    # 20:00 UTC = 12:00 PST: not quiet.
    assert quiet_until(quiet, datetime(2025, 3, 3, 20, 0, tzinfo=UTC), la) is None
    # Across the DST change (9 March 2025): 07:00 PDT is 14:00 UTC.
    assert quiet_until(quiet, datetime(2025, 3, 9, 12, 0, tzinfo=UTC), la) == datetime(2025, 3, 9, 14, 0, tzinfo=UTC)


def test_quiet_hours_same_day_window_and_bypass() -> None:
    quiet = {"start": "12:00", "end": "14:00", "allow_severity": "high"}
    assert quiet_until(quiet, datetime(2025, 3, 3, 13, 0, tzinfo=UTC), ZoneInfo("UTC")) == datetime(2025, 3, 3, 14, 0, tzinfo=UTC)
    assert quiet_until(quiet, datetime(2025, 3, 3, 14, 0, tzinfo=UTC), ZoneInfo("UTC")) is None
    assert quiet_allows(quiet, "critical") and quiet_allows(quiet, "high") and not quiet_allows(quiet, "medium")
    assert not quiet_allows({"start": "1:00", "end": "2:00"}, "critical")


def test_window_end_is_shared_inside_a_window() -> None:
    a = window_end(datetime(2025, 3, 3, 12, 1, tzinfo=UTC), 15)
    b = window_end(datetime(2025, 3, 3, 12, 14, 59, tzinfo=UTC), 15)
    assert a == b == datetime(2025, 3, 3, 12, 15, tzinfo=UTC)
    assert window_end(datetime(2025, 3, 3, 12, 15, tzinfo=UTC), 15) == datetime(2025, 3, 3, 12, 30, tzinfo=UTC)
