from __future__ import annotations

import numpy as np

from scoring.kpi.base import KpiDetector, evaluate_latest, evaluate_series
from scoring.kpi.seasonal import SeasonalRobustZ
from scoring.kpi.series import Cadence
from tests.scoring.kpi.helpers import hourly, seasonal_counts

DAY = np.timedelta64(1, "D")


def test_protocol():
    assert isinstance(SeasonalRobustZ(), KpiDetector)


def test_spike_and_drop_flagged_normal_points_not():
    n = 24 * 28
    v = seasonal_counts(n, seed=5, weekend=0.6)
    v[-30] = v[-30] * 3  # spike
    v[-10] = 0  # outage bucket
    t = hourly(n)
    s = evaluate_series(t, v, SeasonalRobustZ(kind="count"), refit_every=DAY, start=t[-7 * 24])
    flagged = set(np.flatnonzero(s.flags()).tolist())
    assert {n - 30, n - 10} <= flagged
    assert len(flagged - {n - 30, n - 10}) <= 1
    assert s.direction[n - 30] == 1 and s.direction[n - 10] == -1
    assert s.extra["period"][n - 10] == 168
    assert s.lower[n - 10] <= s.expected[n - 10] <= s.upper[n - 10]
    r = s.reasons(n - 10)[0]
    assert r.detector == "seasonal_z" and r.value < -r.threshold


def test_low_counts_at_night_are_not_anomalies():
    rng = np.random.default_rng(7)
    n = 24 * 21
    i = np.arange(n)
    night = (i % 24) < 6
    v = rng.poisson(np.where(night, 0.3, 40)).astype(float)
    v[-24] = 2.0  # 0 -> 2 orders at night
    t = hourly(n)
    s = evaluate_series(t, v, SeasonalRobustZ(kind="count"), refit_every=DAY, start=t[-7 * 24])
    assert night[-24] and not s.flags()[-24]
    assert s.flags()[-7 * 24:].sum() == 0


def test_short_history_falls_back_to_rolling():
    v = np.r_[np.random.default_rng(1).normal(100, 3, 30), 160.0]
    t = hourly(31)
    s = evaluate_series(t, v, SeasonalRobustZ(), start=t[20])
    assert s.extra["period"][-1] == 0
    assert s.flags()[-1] and s.flags()[20:-1].sum() == 0


def test_five_minute_and_daily_cadences():
    rng = np.random.default_rng(2)
    n = 288 * 4
    i = np.arange(n)
    v = 200 + 80 * np.sin(2 * np.pi * i / 288) + rng.normal(0, 5, n)
    v[-1] = v[-1] - 60
    t = np.datetime64("2024-01-01", "s") + i * np.timedelta64(300, "s")
    det = SeasonalRobustZ()
    det.fit(t[:-1], v[:-1])
    assert det.cadence == Cadence(300) and det.period == 288
    assert det.score(t[:-1], v[:-1], t[-1:], v[-1:]).flags()[0]
    days = np.datetime64("2023-01-01", "s") + np.arange(120) * np.timedelta64(1, "D")
    dv = 1000 * np.where(np.arange(120) % 7 >= 5, 0.6, 1.0) + rng.normal(0, 20, 120)
    det = SeasonalRobustZ()
    det.fit(days, dv)
    assert det.period == 7
    s = det.score(days, dv, days[-1:] + np.timedelta64(1, "D"), np.array([dv[-7] * 0.6]))
    assert s.flags()[0] and s.direction[0] == -1


def test_evaluate_latest_matches_series_path_and_is_batched():
    n = 24 * 28 + 1
    rows = np.vstack([seasonal_counts(n, seed=s, weekend=w) for s, w in [(1, 1.0), (2, 0.5), (3, 1.3)]])
    rows[1, -1] = 5
    batch = evaluate_latest(rows, SeasonalRobustZ(kind="count"), Cadence(3600))
    t = hourly(n)
    for r in range(3):
        one = evaluate_series(t, rows[r], SeasonalRobustZ(kind="count"), start=t[-1])
        np.testing.assert_allclose(one.score[-1], batch.score[r])
        np.testing.assert_allclose(one.expected[-1], batch.expected[r])
    assert batch.flags().tolist() == [False, True, False]


def test_backfill_equals_streaming():
    n = 24 * 24
    v = seasonal_counts(n, seed=9, weekend=0.7)
    v[-40:-36] *= 0.2
    t = hourly(n)
    backfill = evaluate_series(t, v, SeasonalRobustZ(kind="count"), refit_every=DAY, start=t[-72])
    # live: one detector instance, refit when the day changes, score each closed bucket as it arrives
    live = SeasonalRobustZ(kind="count")
    fitted_day = None
    scores = []
    for i in range(n - 72, n):
        day = t[i].astype("datetime64[D]")
        if day != fitted_day:
            cut = np.searchsorted(t, day.astype("datetime64[s]"))
            live.fit(t[:cut], v[:cut])
            fitted_day = day
        scores.append(live.score(t[:i], v[:i], t[i:i + 1], v[i:i + 1]).score[0])
    np.testing.assert_array_equal(backfill.score[-72:], np.array(scores))
    # shuffled input order gives the same answer (no dependence on arrival order)
    p = np.random.default_rng(0).permutation(n)
    shuffled = evaluate_series(t[p], v[p], SeasonalRobustZ(kind="count"), refit_every=DAY, start=t[-72])
    np.testing.assert_array_equal(shuffled.score[np.argsort(p)][-72:], backfill.score[-72:])
