"""Prophet forecasts: fitted on a schedule, cached as a table, and used to score observed values.

`fit_forecast` returns a plain DataFrame (ds, yhat, yhat_lower, yhat_upper) that the caller stores (one
row per future bucket); scoring later is a lookup, so a Prophet fit (~0.1-1 s) is paid once per series
per schedule period, never per bucket. `forecast` serves `GET /api/v1/forecast` and degrades to a
seasonal-naive forecast when history is too short or Prophet fails, so the API never 500s on a thin
series.

Determinism: Prophet's intervals come from random sampling; the seed is fixed so that a backfill and a
live run fitting on the same history produce the same table.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np
import pandas as pd

from scoring.kpi.base import KpiScores, threshold_score
from scoring.kpi.series import Cadence, as_seconds, infer_cadence

GRANULARITY_SECONDS = {"minute": 60, "5min": 300, "30min": 1800, "hour": 3600, "day": 86400, "week": 604800}
FORECAST_COLUMNS = ["ds", "yhat", "yhat_lower", "yhat_upper"]


def quiet_prophet_logging() -> None:
    """Prophet and cmdstanpy log every fit at INFO and warn about plotly; keep worker logs readable."""
    for name in ("cmdstanpy", "prophet", "prophet.plot", "prophet.models"):
        lg = logging.getLogger(name)
        lg.setLevel(logging.ERROR)
        for handler in lg.handlers:
            handler.setLevel(logging.ERROR)
    stan = logging.getLogger("cmdstanpy")
    if not stan.handlers:
        # cmdstanpy installs an INFO stream handler (and lowers the level) only if none exists yet
        stan.addHandler(logging.NullHandler())
    logging.getLogger("prophet.plot").setLevel(logging.CRITICAL)


def _prophet() -> Any:
    quiet_prophet_logging()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from prophet import Prophet
    quiet_prophet_logging()  # cmdstanpy resets its own logger to INFO when first imported
    return Prophet


def _z_for_width(width: float) -> float:
    from statistics import NormalDist

    return float(NormalDist().inv_cdf(0.5 + width / 2.0))


def _clean_outliers(y: np.ndarray, window: int, z: float = 6.0) -> np.ndarray:
    """Blank points far from a centred rolling median: Prophet's trend and intervals bend to outliers."""
    s = pd.Series(y)
    med = s.rolling(window, center=True, min_periods=max(3, window // 3)).median()
    dev = (s - med).abs()
    mad = dev.rolling(window * 4, center=True, min_periods=max(3, window // 3)).median() * 1.4826
    bad = dev > z * mad.clip(lower=1e-9)
    return np.where(bad.to_numpy(), np.nan, y)


def fit_forecast(times: object, values: object, *, horizon: int, cadence: Cadence | None = None,
                 interval_width: float = 0.99, kind: str = "gauge", clean_outliers: bool = True,
                 uncertainty_samples: int = 300, seed: int = 0) -> pd.DataFrame:
    """Fit Prophet on the history and forecast `horizon` buckets after its last point.

    Seasonalities are switched on only when the history can support them (a daily season needs two
    days of sub-daily data, a weekly one two weeks, a yearly one two years).
    """
    t = as_seconds(times)
    y = np.asarray(values, dtype=float)
    cadence = cadence or infer_cadence(t)
    ok = np.isfinite(y)
    t, y = t[ok], y[ok]
    span = (t[-1] - t[0]) if t.size else 0
    if clean_outliers and t.size >= 20:
        y = _clean_outliers(y, window=max(5, min(cadence.per_day, 48) | 1))
    Prophet = _prophet()
    model = Prophet(
        interval_width=interval_width,
        uncertainty_samples=uncertainty_samples,
        daily_seasonality=bool(cadence.seconds < 86400 and span >= 2 * 86400),
        weekly_seasonality=bool(span >= 14 * 86400),
        yearly_seasonality=bool(span >= 730 * 86400),
    )
    frame = pd.DataFrame({"ds": pd.to_datetime(t, unit="s"), "y": y})
    np.random.seed(seed)  # Prophet samples intervals with the global RNG
    model.fit(frame, algorithm="LBFGS")
    future = pd.DataFrame({"ds": pd.to_datetime(t[-1] + cadence.seconds * np.arange(1, horizon + 1), unit="s")})
    np.random.seed(seed)
    pred = model.predict(future)[FORECAST_COLUMNS].reset_index(drop=True)
    return _floor_interval(pred, kind, interval_width)


def _floor_interval(pred: pd.DataFrame, kind: str, interval_width: float) -> pd.DataFrame:
    if kind in ("count", "money"):
        pred["yhat"] = pred["yhat"].clip(lower=0)
        pred["yhat_lower"] = pred["yhat_lower"].clip(lower=0)
    if kind == "count":
        # Poisson floor: a count of ~1 per bucket cannot have a band narrower than its own noise
        half = _z_for_width(interval_width) * np.sqrt(np.fmax(pred["yhat"].to_numpy(), 1.0))
        pred["yhat_upper"] = np.fmax(pred["yhat_upper"].to_numpy(), pred["yhat"].to_numpy() + half)
        pred["yhat_lower"] = np.fmax(np.fmin(pred["yhat_lower"].to_numpy(), pred["yhat"].to_numpy() - half), 0)
    return pred


def seasonal_naive_forecast(times: object, values: object, *, horizon: int, cadence: Cadence | None = None,
                            interval_width: float = 0.99) -> pd.DataFrame:
    """Fallback: repeat the median of the same slot (daily season when available) with a MAD band."""
    t = as_seconds(times)
    y = np.asarray(values, dtype=float)
    cadence = cadence or (infer_cadence(t) if t.size >= 2 else Cadence(86400))
    p = cadence.per_day if t.size >= 2 * cadence.per_day and cadence.per_day > 1 else 1
    last = int(t[-1]) if t.size else 0
    z = _z_for_width(interval_width)
    rows = []
    for h in range(1, horizon + 1):
        idx = np.arange(y.size - p + ((h - 1) % p), -1, -p)[:8] if y.size else np.array([], dtype=int)
        sample = y[idx[idx >= 0]] if idx.size else y[-8:]
        sample = sample[np.isfinite(sample)]
        if sample.size == 0:
            sample = y[np.isfinite(y)][-8:] if y.size else np.array([0.0])
        if sample.size == 0:
            sample = np.array([0.0])
        med = float(np.median(sample))
        sd = float(1.4826 * np.median(np.abs(sample - med))) or float(np.std(sample))
        rows.append((last + h * cadence.seconds, med, med - z * sd, med + z * sd))
    out = pd.DataFrame(rows, columns=FORECAST_COLUMNS)
    out["ds"] = pd.to_datetime(out["ds"], unit="s")
    return out


def forecast(times: object, values: object, horizon: int, granularity: str | int = "day", *,
             interval_width: float = 0.95, kind: str = "gauge", min_points: int = 10) -> pd.DataFrame:
    """Forecast for `GET /api/v1/forecast`: `horizon` buckets of `granularity` after the last point.

    Returns ds, yhat, yhat_lower, yhat_upper; Prophet when there is enough history, seasonal naive
    otherwise (or when Prophet raises), never an exception on thin data.
    """
    seconds = GRANULARITY_SECONDS[granularity] if isinstance(granularity, str) else int(granularity)
    cadence = Cadence(seconds)
    t = as_seconds(times)
    y = np.asarray(values, dtype=float)
    if int(np.isfinite(y).sum()) >= min_points:
        try:
            return fit_forecast(t, y, horizon=horizon, cadence=cadence, interval_width=interval_width, kind=kind)
        except Exception:  # noqa: BLE001 - a Stan failure must degrade to the fallback, not a 500
            logging.getLogger(__name__).warning("prophet fit failed; seasonal naive fallback", exc_info=True)
    return seasonal_naive_forecast(t, y, horizon=horizon, cadence=cadence, interval_width=interval_width)


def score_against_forecast(observed: np.ndarray, yhat: np.ndarray, lower: np.ndarray,
                           upper: np.ndarray) -> np.ndarray:
    """Signed distance to yhat in units of the interval half-width on that side (|r| > 1: outside)."""
    observed = np.asarray(observed, dtype=float)
    up_half = np.fmax(np.asarray(upper, dtype=float) - yhat, 1e-9)
    down_half = np.fmax(yhat - np.asarray(lower, dtype=float), 1e-9)
    diff = observed - yhat
    r = np.where(diff >= 0, diff / up_half, diff / down_half)
    # on the boundary is inside: a count of 0 against a lower bound clipped at 0 is not an anomaly
    inside = (observed >= lower) & (observed <= upper)
    return np.where(inside, np.clip(r, -0.999, 0.999), r)


class ProphetResidual:
    """Prophet interval detector: fit() caches a forecast table, score() looks observed values up in it.

    Use with a refit schedule (`evaluate_series(..., refit_every=one day)`); `horizon_buckets` must
    cover one schedule period. Abstains (NaN) with less than `min_history` points or outside the table.
    """

    name = "prophet"

    def __init__(self, *, kind: str = "gauge", interval_width: float = 0.99, horizon_buckets: int | None = None,
                 min_history: int = 48, cadence: Cadence | None = None, threshold: float = 1.0) -> None:
        self.kind = kind
        self.interval_width = interval_width
        self.horizon_buckets = horizon_buckets
        self.min_history = min_history
        self.cadence = cadence
        self.threshold = threshold
        self.table: pd.DataFrame | None = None

    def fit(self, times: np.ndarray, values: np.ndarray) -> None:
        self.table = None
        if int(np.isfinite(np.asarray(values, dtype=float)).sum()) < self.min_history:
            return
        cadence = self.cadence or infer_cadence(times)
        self.cadence = cadence
        horizon = self.horizon_buckets or 2 * cadence.per_day
        try:
            self.table = fit_forecast(times, values, horizon=horizon, cadence=cadence,
                                      interval_width=self.interval_width, kind=self.kind)
        except Exception:  # noqa: BLE001 - no model means abstain, not a crashed scoring run
            logging.getLogger(__name__).warning("prophet fit failed; detector abstains", exc_info=True)

    def lookup(self, times: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """yhat, lower, upper of the cached table at `times` (bucket start), NaN when not covered."""
        n = len(np.asarray(times))
        if self.table is None or self.cadence is None:
            nan = np.full(n, np.nan)
            return nan, nan.copy(), nan.copy()
        keys = as_seconds(self.table["ds"].to_numpy()) // self.cadence.seconds
        want = as_seconds(times) // self.cadence.seconds
        pos = np.searchsorted(keys, want)
        pos_c = np.clip(pos, 0, max(keys.size - 1, 0))
        hit = (keys.size > 0) & (keys[pos_c] == want)
        cols = [self.table[c].to_numpy(dtype=float)[pos_c] for c in ("yhat", "yhat_lower", "yhat_upper")]
        return tuple(np.where(hit, c, np.nan) for c in cols)  # type: ignore[return-value]

    def score(self, hist_times: np.ndarray, hist_values: np.ndarray, times: np.ndarray,
              values: np.ndarray) -> KpiScores:
        yhat, lo, hi = self.lookup(times)
        return self.score_batch(np.asarray(values, dtype=float), yhat, lo, hi)

    def score_batch(self, observed: np.ndarray, yhat: np.ndarray, lower: np.ndarray,
                    upper: np.ndarray) -> KpiScores:
        """Vectorised scoring of many series' latest bucket against their cached forecasts."""
        r = score_against_forecast(observed, yhat, lower, upper)
        return KpiScores(self.name, np.asarray(observed, dtype=float).copy(), threshold_score(r, self.threshold),
                         np.asarray(yhat, dtype=float), np.asarray(lower, dtype=float),
                         np.asarray(upper, dtype=float), r, self.threshold, "interval")
