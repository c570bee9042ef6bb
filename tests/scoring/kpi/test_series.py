from __future__ import annotations

import numpy as np

from scoring.kpi.series import (
    Cadence,
    candidate_periods,
    detect_periods,
    infer_cadence,
    row_median,
    row_quantiles,
    to_grid,
)
from tests.scoring.kpi.helpers import hourly, seasonal_counts

T0 = np.datetime64("2024-01-01T00:00:00", "s")


def test_infer_cadence_regular_and_jittery():
    assert infer_cadence(T0 + np.arange(50) * np.timedelta64(300, "s")) == Cadence(300, True)
    assert infer_cadence(T0 + np.arange(50) * np.timedelta64(1, "D")).seconds == 86400
    rng = np.random.default_rng(1)
    jitter = T0 + (np.arange(200) * 1800 + rng.integers(-60, 60, 200)).astype("timedelta64[s]")
    cad = infer_cadence(jitter)
    assert cad.seconds == 1800
    irregular = T0 + np.cumsum(rng.integers(100, 5000, 200)).astype("timedelta64[s]")
    assert infer_cadence(irregular).regular is False


def test_hourly_with_gaps_stays_hourly():
    t = hourly(100)
    keep = np.ones(100, bool)
    keep[10:20] = False
    assert infer_cadence(t[keep]) == Cadence(3600, True)


def test_to_grid_places_gaps_and_keeps_last_duplicate():
    t = np.array(["2024-01-01T00:00", "2024-01-01T02:10", "2024-01-01T02:50"], dtype="datetime64[s]")
    start, g = to_grid(t, [1.0, 2.0, 3.0], Cadence(3600))
    assert g.tolist()[0] == 1.0 and np.isnan(g[1]) and g[2] == 3.0
    _, g2 = to_grid(t, [1.0, 2.0, 3.0], Cadence(3600), end=int(start) + 5, length=5)
    assert g2.shape == (5,) and np.isnan(g2[3:]).all()


def test_row_quantiles_match_numpy_with_nans():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(20, 31))
    a[rng.random(a.shape) < 0.2] = np.nan
    np.testing.assert_allclose(row_median(a), np.nanmedian(a, axis=1))
    np.testing.assert_allclose(row_quantiles(a, (0.9,))[0], np.nanquantile(a, 0.9, axis=1))


def test_detect_periods_daily_weekly_none():
    n = 24 * 28
    daily = seasonal_counts(n, seed=1)
    weekly = seasonal_counts(n, seed=2, weekend=0.5)
    walk = 100 + np.cumsum(np.random.default_rng(3).normal(size=n))
    noise = np.random.default_rng(4).normal(100, 5, n)
    periods = detect_periods(np.vstack([daily, weekly, walk, noise]), candidate_periods(Cadence(3600)))
    assert periods.tolist() == [24, 168, 0, 0]


def test_candidate_periods_by_cadence():
    assert candidate_periods(Cadence(300)) == (288, 2016)
    assert candidate_periods(Cadence(3600)) == (24, 168)
    assert candidate_periods(Cadence(86400)) == (7,)
