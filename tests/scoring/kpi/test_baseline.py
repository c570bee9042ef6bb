"""Seasonal rate baseline of sub-hourly count series: slots, dispersion, Poisson z on totals."""

from __future__ import annotations

import numpy as np

from scoring.kpi.baseline import dispersion, poisson_z, slot_expected


def test_slot_expected_prefers_weeks_then_days() -> None:
    nan = np.nan
    weeks = np.array([[6.0, 8.0, 7.0, nan, nan], [nan, nan, nan, 80.0, 5.0], [nan] * 5])
    days = np.array([[1.0] * 7, [4.0, 2.0, 3.0, nan, nan, nan, nan], [2.0, nan, nan, nan, nan, nan, nan]])
    out = slot_expected(weeks, days)
    assert out[0] == 7.0  # the same hour-of-week, not a mix of weekdays
    assert out[1] == 3.0  # two weeks only (one a burst): the same hour on previous days
    assert np.isnan(out[2])  # not enough of either


def test_dispersion_poisson_floor_and_bursts() -> None:
    rng = np.random.default_rng(0)
    poisson = rng.poisson(0.2, (1, 168)).astype(float)
    bursty = np.where(rng.random((1, 168)) < 0.05, 4.0, 0.0)  # the same mean, orders in bursts of 4
    assert dispersion(poisson)[0] < 1.3 and dispersion(bursty)[0] > 3.0
    assert dispersion(np.full((1, 5), np.nan))[0] == 1.0


def test_poisson_z_is_the_exact_tail_of_a_silent_run() -> None:
    from scipy.stats import norm

    # 90 silent minutes where 9 orders were expected: p = exp(-9), z = -3.67 (the deviance would say 4.24)
    z = poisson_z(np.array([0.0, 0.0, 9.0, 20.0]), np.array([9.0, 9.0, 9.0, 9.0]), np.array([1.0, 2.0, 1.0, 1.0]))
    assert np.isclose(z[0], -norm.isf(np.exp(-9.0))) and -3.7 < z[0] < -3.6
    assert np.isclose(z[1], -norm.isf(np.exp(-4.5)))  # twice as dispersed: as if 4.5 were expected
    assert z[2] == 0.0 and 2.9 < z[3] < 3.4  # 20 where 9 were expected: P(X >= 20) = 0.0011
