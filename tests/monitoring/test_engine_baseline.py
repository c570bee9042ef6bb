"""Minute count series judged against a seasonal rate baseline (monitoring.engine): a sparse series'
silence pools into one falling run, ordinary gaps between orders do not; revenue rises need more orders."""

from __future__ import annotations

import numpy as np

from monitoring.engine import GroupEngine, SeriesSpec
from scoring.kpi.series import Cadence

MINUTE = Cadence(60)


def _walk(values: np.ndarray, rate: np.ndarray) -> list:  # type: ignore[type-arg]
    S, T = values.shape
    specs = [SeriesSpec("orders", "total", "", "minute", "count", ("seasonal_z",), consensus=1, direction="down",
                        min_duration=10) for _ in range(S)]
    engine = GroupEngine(specs, MINUTE, 0, values, np.arange(T) * 60, seasonal=False, baseline=rate)
    for index in range(168, T):
        engine.step(np.arange(S), index)
    return engine.all_incidents()


def test_two_silent_hours_of_a_sparse_series_are_one_incident() -> None:
    rng = np.random.default_rng(3)
    T, lam = 900, 0.1  # 6 orders an hour: no single minute can be low
    values = rng.poisson(lam, (1, T)).astype(float)
    values[0, 600:720] = 0.0
    values[0, 720] = 1.0
    found = _walk(values, np.full((1, T), lam))
    assert len(found) == 1
    inc = found[0]
    # dated where the silence began (after the last order before the outage), found before it ends
    assert inc.direction == -1 and 540 <= inc.start_index <= 600 and inc.detected_index < 720
    # one silent hour (6 expected, p = exp(-6)) is within what such a shop sees every few days
    values[0, 660:720] = rng.poisson(lam, 60)
    values[0, 660] = 1.0
    assert _walk(values, np.full((1, T), lam)) == []
    assert any("consecutive buckets" in r["text"] for r in inc.reasons)


def test_ordinary_gaps_between_orders_are_rarely_alarms() -> None:
    rng = np.random.default_rng(4)
    T, lam = 3000, 0.1
    values = rng.poisson(lam, (40, T)).astype(float)  # 40 quiet series, ~113,000 minutes evaluated
    # a silence reaching e expected orders has probability exp(-e) after each order: at z = 4 (e = 10.4),
    # ~0.3 expected over these ~10,700 gaps
    assert len(_walk(values, np.full((40, T), lam))) <= 1


def _hourly(rev: np.ndarray, orders: np.ndarray | None) -> list:  # type: ignore[type-arg]
    pairs = (("revenue", "money"), ("orders", "count"))[:1 if orders is None else 2]
    specs = [SeriesSpec(m, "channel", "ads", "hour", k, ("seasonal_z",), consensus=1, direction="up") for m, k in pairs]
    values = np.vstack([rev] if orders is None else [rev, orders])
    T = rev.size
    engine = GroupEngine(specs, Cadence(3600), 0, values, np.arange(T) * 3600)
    for index in range(24 * 21, T):
        engine.step(np.arange(len(specs)), index)
    return [(engine.specs[i.row].metric, i.start_index) for i in engine.all_incidents()]


def test_revenue_rise_needs_more_orders_not_one_large_order() -> None:
    rng = np.random.default_rng(5)
    T = 24 * 28
    h = np.arange(T)
    mu = 20.0 * (1.0 + 0.6 * np.sin(2 * np.pi * ((h % 24) - 8) / 24))
    orders = rng.poisson(mu).astype(float)
    rev = np.array([rng.gamma(2.0, 25.0, int(n)).sum() for n in orders])
    spike = T - 30
    one_big = rev.copy()
    one_big[spike] += 3000.0  # one order worth ~3 hours of sales; the order count is ordinary
    assert ("revenue", spike) in _hourly(one_big, None)  # revenue alone: an alarm
    assert ("revenue", spike) not in _hourly(one_big, orders)  # orders watched and flat: not one
    busy_orders, busy_rev = orders.copy(), rev.copy()
    busy_orders[spike] += 60  # a real rush: many more orders carrying the extra revenue
    busy_rev[spike] += rng.gamma(2.0, 25.0, 60).sum()
    found = _hourly(busy_rev, busy_orders)
    assert ("revenue", spike) in found and ("orders", spike) in found
