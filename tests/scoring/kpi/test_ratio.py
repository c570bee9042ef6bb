from __future__ import annotations

import numpy as np

from scoring.kpi.base import evaluate_series
from scoring.kpi.ratio import (
    BinomialRatioDetector,
    aov,
    binomial_deviance_z,
    ctr,
    payment_failure_rate,
    pooled_rate,
    wilson_interval,
)
from scoring.kpi.series import Cadence
from tests.scoring.kpi.helpers import hourly


def test_pooled_not_average_of_ratios():
    assert ctr([1, 100], [2, 1000]) == 101 / 1002
    assert aov([50.0, 150.0], [1, 3]) == 50.0
    assert np.isnan(payment_failure_rate([0], [0]))
    np.testing.assert_allclose(pooled_rate([[1, 2], [3, 4]], [[10, 10], [0, 0]], axis=1), [0.15, np.nan])


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(0, 3, 1.96)
    assert lo == 0 and 0.5 < hi < 0.6
    lo, hi = wilson_interval(50, 100, 1.96)
    np.testing.assert_allclose([lo, hi], [0.4038, 0.5962], atol=1e-3)


def test_deviance_z_tails():
    assert binomial_deviance_z(np.array([0.0]), np.array([1000.0]), np.array([0.02]))[0] < -6
    assert abs(binomial_deviance_z(np.array([0.0]), np.array([3.0]), np.array([0.02]))[0]) < 0.5


def _campaign(n: int, seed: int, impressions: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    i = np.arange(n)
    imp = rng.poisson(impressions * (1 + 0.5 * np.sin(2 * np.pi * i / 24))).astype(float)
    rate = 0.02 * (1 + 0.2 * np.sin(2 * np.pi * i / 24 + 1)) * np.exp(rng.normal(0, 0.05, n))
    clicks = rng.binomial(imp.astype(int), np.clip(rate, 0, 1)).astype(float)
    return clicks, imp


def test_ctr_collapse_caught_small_denominator_ignored():
    n = 24 * 14
    clicks, imp = _campaign(n, 1, 1000)
    at = n - 24 + int(np.argmax(imp[-24:]))
    assert imp[at] >= 1000
    clicks[at] = 0  # collapse at >= 1,000 impressions in that hour
    small_c, small_i = _campaign(n, 2, 3)
    small_c[-5] = 0
    t = hourly(n)
    big = evaluate_series(t, np.column_stack([clicks, imp]), BinomialRatioDetector(), start=t[-48],
                          refit_every=np.timedelta64(1, "D"))
    assert big.flags()[at] and big.direction[at] == -1
    assert big.flags()[-48:].sum() == 1
    small = evaluate_series(t, np.column_stack([small_c, small_i]), BinomialRatioDetector(), start=t[-48])
    assert small.flags()[-48:].sum() == 0


def test_overdispersion_keeps_huge_denominators_quiet():
    rng = np.random.default_rng(3)
    n = 24 * 14
    imp = np.full((1, n + 1), 1_000_000.0)
    rate = 0.02 * np.exp(rng.normal(0, 0.03, n + 1))  # 3 % wobble: real, but not an incident
    clicks = rng.binomial(1_000_000, rate)[None, :].astype(float)
    det = BinomialRatioDetector()
    s = det.score_latest(clicks, imp, Cadence(3600))
    assert not s.flags()[0]
    clicks[0, -1] = 0.02 * 0.5 * 1_000_000  # halved CTR
    assert det.score_latest(clicks, imp, Cadence(3600)).flags()[0]
