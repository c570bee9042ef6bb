"""Stock episodes: one alert per escalation, closed by a restock, predicted stock-outs only when they
come before the expected restock."""

from __future__ import annotations

import numpy as np

from scoring.kpi.stock import stock_episodes

NOW = np.datetime64("2024-01-10T00:00:00", "s")
DAY = np.timedelta64(86400, "s")
NAT = np.datetime64("NaT", "s")


def _step(state, reorder, last, level, velocity, *, lead=3.0, warn=60.0, crit=0.0, now=NOW, **kw):  # type: ignore[no-untyped-def]
    return stock_episodes(state, reorder, last, level, velocity, lead, warning_threshold=warn,
                          critical_threshold=crit, safety_days=3.0, now=now, **kw)


def test_normal_restock_cycle_raises_nothing() -> None:
    # 10/day, reorder point 60 (6 days of cover) with a 3-day lead time: the reorder arrives in time
    s = _step("ok", NAT, 70.0, 55.0, 10.0)
    assert s.alert.tolist() == [""] and s.state.tolist() == ["open"] and s.reorder_at[0] == NOW
    # two days later, 35 left: runs out in 3.5 days, the restock is due in 1: still fine
    s = _step(s.state, s.reorder_at, 55.0, 35.0, 10.0, now=NOW + 2 * DAY)
    assert s.alert.tolist() == [""] and s.restock_expected_at[0] == NOW + 3 * DAY
    # the restock arrives: level up, well covered -> episode closed, re-armed
    s = _step(s.state, s.reorder_at, 35.0, 250.0, 10.0, now=NOW + 3 * DAY)
    assert s.alert.tolist() == [""] and s.state.tolist() == ["ok"] and np.isnat(s.reorder_at[0])


def test_surge_predicts_stockout_before_restock_once() -> None:
    # reached the reorder point yesterday; demand tripled: 1.8 days left, restock expected in 2
    s = _step("open", NOW - DAY, 80.0, 55.0, 30.0)
    assert s.alert.tolist() == ["risk"] and s.state.tolist() == ["risk"]
    assert "before the expected restock" in s.reason[0]
    s = _step(s.state, s.reorder_at, 55.0, 40.0, 30.0, now=NOW + DAY / 2)
    assert s.alert.tolist() == [""]  # same episode: no repeat
    s = _step(s.state, s.reorder_at, 40.0, 0.0, 30.0, now=NOW + 2 * DAY)
    assert s.alert.tolist() == ["out"] and s.state.tolist() == ["out"]  # escalation alerts once more
    s = _step(s.state, s.reorder_at, 0.0, 0.0, 0.0, now=NOW + 3 * DAY)
    assert s.alert.tolist() == [""]


def test_reorder_point_too_low_for_velocity_warns_above_it() -> None:
    # 300 left, far above the reorder point of 20, but 120/day: out in 2.5 days, before any reorder
    s = _step("ok", NAT, np.nan, 300.0, 120.0, warn=20.0)
    assert s.alert.tolist() == ["risk"] and s.stockout_at[0] == NOW + np.timedelta64(int(2.5 * 86400), "s")
    # slow seller at the same level: nothing
    assert _step("ok", NAT, np.nan, 300.0, 5.0, warn=20.0).alert.tolist() == [""]


def test_no_flapping_until_a_clear_restock() -> None:
    s = _step("ok", NAT, np.nan, 300.0, 120.0, warn=20.0)
    assert s.alert.tolist() == ["risk"]
    s = _step(s.state, s.reorder_at, 300.0, 800.0, 120.0, warn=20.0)  # 6.7 days: not clearly covered
    assert s.state.tolist() == ["risk"]
    s = _step(s.state, s.reorder_at, 800.0, 700.0, 120.0, warn=20.0)
    assert s.alert.tolist() == [""]
    s = _step(s.state, s.reorder_at, 700.0, 3000.0, 120.0, warn=20.0)  # restocked: re-armed
    assert s.state.tolist() == ["ok"]
    assert _step(s.state, s.reorder_at, 3000.0, 600.0, 120.0, warn=20.0).alert.tolist() == ["risk"]


def test_overdue_restock_waits_for_the_stockout() -> None:
    # the reorder point was reached 5 days ago, lead time 3: the restock is late, expected any moment
    s = _step("open", NOW - 5 * DAY, 20.0, 10.0, 10.0)
    assert s.alert.tolist() == [""] and s.restock_expected_at[0] == NOW
    assert _step(s.state, s.reorder_at, 10.0, 0.0, 10.0).alert.tolist() == ["out"]


def test_low_alert_only_where_asked_and_vectorised() -> None:
    s = stock_episodes(["ok", "ok", "ok"], [NAT] * 3, [100.0] * 3, [50.0, 50.0, 50.0], [1.0, 1.0, 0.0], 3.0,
                       warning_threshold=60.0, critical_threshold=0.0, alert_low=[True, False, True], now=NOW,
                       level_at=NOW - DAY)
    assert s.alert.tolist() == ["low", "", "low"]
    assert s.state.tolist() == ["open", "open", "open"] and (s.reorder_at == NOW - DAY).all()
    assert np.isinf(s.days_of_cover[2]) and np.isnat(s.stockout_at[2])


def test_velocity_takes_the_last_day_only_on_a_real_surge() -> None:
    from scoring.kpi.stock import sales_velocity_per_day

    units = np.array([[10, 12, 8, 11, 9, 10, 16], [10, 12, 8, 11, 9, 10, 40]], dtype=float)
    v = sales_velocity_per_day(units)
    assert v[0] == units[0].mean()  # a busy day within this product's own noise
    assert v[1] == 40.0


def test_depletion_velocity_follows_the_level_not_the_rollups() -> None:
    from scoring.kpi.stock import depletion_velocity

    t0, t1 = NOW, NOW + DAY
    # the rollups said 30/day but the level fell by 10 in a day: the estimate moves toward 10
    v = depletion_velocity([30.0, 30.0, 30.0, np.nan], [100.0, 100.0, 100.0, 100.0], [t0, t0, NAT, t0],
                           [90.0, 400.0, 90.0, 90.0], [t1, t1, t1, t1], window_days=7.0)
    w = 1 - np.exp(-1 / 7)
    assert np.isclose(v[0], (1 - w) * 30 + w * 10)
    assert v[1] == 30.0 and v[2] == 30.0  # a restock, or no earlier time: unchanged
    assert v[3] == 10.0  # no prior: the observed pace
    # a week of daily drops of 10 brings a wrong prior most of the way
    v, level = np.array([30.0]), 1000.0
    for d in range(7):
        v = depletion_velocity(v, level, NOW + d * DAY, level - 10, NOW + (d + 1) * DAY)
        level -= 10
    assert 10 < v[0] < 18


def test_a_restock_after_a_stockout_rearms_even_when_cover_stays_short() -> None:
    s = _step("out", NOW - 4 * DAY, 0.0, 70.0, 12.0)  # restocked above the reorder point, 5.8 days of cover
    assert s.state.tolist() != ["out"] and s.alert.tolist() == [""]
    assert _step(s.state, s.reorder_at, 70.0, 0.0, 12.0, now=NOW + 6 * DAY).alert.tolist() == ["out"]
