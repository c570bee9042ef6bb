from __future__ import annotations

import logging

import numpy as np

from scoring.kpi.base import evaluate_series
from scoring.kpi.forecast import ProphetResidual, fit_forecast, forecast, score_against_forecast
from scoring.kpi.iforest import IsolationForestKpi, day_features
from tests.scoring.kpi.helpers import hourly, seasonal_counts

DAY = np.timedelta64(1, "D")


def test_fit_forecast_table_shape_and_quiet_logs(caplog):
    n = 24 * 14
    v = seasonal_counts(n, seed=1)
    with caplog.at_level(logging.INFO):
        tab = fit_forecast(hourly(n), v, horizon=24, kind="count")
    assert list(tab.columns) == ["ds", "yhat", "yhat_lower", "yhat_upper"] and len(tab) == 24
    assert (tab["yhat_lower"] <= tab["yhat"]).all() and (tab["yhat"] <= tab["yhat_upper"]).all()
    assert tab["ds"].iloc[0] == np.datetime64("2024-01-15T00:00:00")
    assert not [r for r in caplog.records if r.name.startswith("cmdstanpy") and r.levelno < logging.ERROR]
    # the forecast follows the daily cycle
    assert tab["yhat"].max() > 1.5 * tab["yhat"].min()


def test_forecast_api_falls_back_on_thin_history():
    t = np.array(["2024-01-01", "2024-01-02", "2024-01-03"], dtype="datetime64[s]")
    out = forecast(t, [10.0, 12.0, 11.0], horizon=5, granularity="day")
    assert len(out) == 5 and np.isfinite(out[["yhat", "yhat_lower", "yhat_upper"]].to_numpy()).all()
    assert str(out["ds"].iloc[0]) == "2024-01-04 00:00:00"


def test_score_against_forecast_is_side_aware():
    r = score_against_forecast(np.array([15.0, 4.0, 10.0]), np.array([10.0] * 3), np.array([5.0] * 3),
                               np.array([20.0] * 3))
    np.testing.assert_allclose(r, [0.5, -1.2, 0.0])
    # on the boundary counts as inside (0 orders against a lower bound clipped at 0)
    edge = ProphetResidual().score_batch(np.array([0.0]), np.array([0.8]), np.array([0.0]), np.array([4.0]))
    assert not edge.flags()[0]


def test_prophet_residual_detects_drop_deterministically():
    n = 24 * 16
    v = seasonal_counts(n, seed=4)
    v[-10:-7] = 0
    t = hourly(n)
    runs = [evaluate_series(t, v, ProphetResidual(kind="count", horizon_buckets=25), refit_every=DAY,
                            start=t[-24]) for _ in range(2)]
    np.testing.assert_array_equal(runs[0].score, runs[1].score)
    s = runs[0]
    assert s.flags()[-10:-7].all()
    assert s.flags()[-24:].sum() <= 4
    assert np.isnan(s.score[:-24]).all()


def test_day_features_no_lookahead():
    v = seasonal_counts(24 * 30, seed=2)
    f_all = day_features(v, 24, 1.0)
    f_cut = day_features(v[:500], 24, 1.0)
    np.testing.assert_allclose(f_all[:500], f_cut, equal_nan=True)


def test_iforest_flags_level_drop_day():
    n = 24 * 35
    v = seasonal_counts(n, seed=6, weekend=0.7)
    v[-12:] = np.round(v[-12:] * 0.3)
    t = hourly(n)
    s = evaluate_series(t, v, IsolationForestKpi(), refit_every=DAY, start=t[-48])
    assert s.flags()[-12:].sum() >= 8
    assert s.flags()[-48:-12].sum() <= 2
    assert (s.direction[-12:][s.flags()[-12:]] == -1).all()


def test_iforest_abstains_without_history():
    det = IsolationForestKpi()
    det.fit(hourly(48), np.ones(48))
    s = det.score(hourly(48), np.ones(48), hourly(1) + np.timedelta64(48, "h"), np.array([5.0]))
    assert np.isnan(s.score[0])
