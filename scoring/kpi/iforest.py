"""Isolation Forest on engineered day-window features, one model per series, trained on its history only.

For every bucket j the features describe the day ending at j (the bucket itself for daily series, the
trailing 24 hours for sub-daily ones), so the detector can vote on every closed bucket and sees a whole
calendar day at the daily close:

- level: day total vs the median of the same weekday in previous weeks (log ratio),
- ratio to the 7-day median of day totals,
- day-over-day change,
- (sub-daily) the latest bucket vs the median of its slot over the last 7 days (intraday shape now),
- (sub-daily) mean absolute log deviation of the day's buckets from their slot medians (shape overall).

Log ratios with a smoothing constant keep zero-heavy series finite and make features scale-free, so one
forest configuration serves series of any size. The forest's anomaly score is calibrated against the
series' own training scores: 0.5 (the threshold) is `threshold` times the distance from the median to the
99th percentile of training scores (a forest cannot score a point much beyond the most
isolated training points, so the threshold sits just past that edge, at 1.2x; consensus confirms).
"""

from __future__ import annotations

import numpy as np

from scoring.kpi.base import KpiScores, threshold_score
from scoring.kpi.series import Cadence, bucket_index, infer_cadence, row_median, row_quantiles, to_grid


def _lagged(x: np.ndarray, lags: list[int]) -> np.ndarray:
    """Matrix (len(x) x len(lags)) of x shifted back by each lag (NaN before the start)."""
    out = np.full((x.size, len(lags)), np.nan)
    for i, lag in enumerate(lags):
        if lag < x.size:
            out[lag:, i] = x[:-lag] if lag else x
    return out


def day_features(x: np.ndarray, per_day: int, smooth: float) -> np.ndarray:
    """Feature rows for every bucket of a regular grid (NaN rows where history is too short)."""
    d = per_day
    valid = (~np.isnan(x)).astype(float)
    filled = np.nan_to_num(x)
    csum = np.concatenate([[0.0], np.cumsum(filled)])
    cval = np.concatenate([[0.0], np.cumsum(valid)])
    idx = np.arange(x.size)
    lo = np.maximum(idx + 1 - d, 0)
    total = csum[idx + 1] - csum[lo]
    count = cval[idx + 1] - cval[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        # a day window with under half its buckets present is unknown, partial windows are scaled up
        w = np.where((count >= max(1, d / 2)) & (idx + 1 >= d), total * d / np.maximum(count, 1), np.nan)
    c = smooth * d

    def lr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.log((np.maximum(a, 0) + c) / (np.maximum(b, 0) + c))

    same_weekday = row_median(_lagged(w, [7 * d * k for k in range(1, 5)]))
    week = row_median(_lagged(w, [d * k for k in range(1, 8)]))
    feats = [lr(w, same_weekday), lr(w, week), lr(w, _lagged(w, [d])[:, 0])]
    if d > 1:
        slot = row_median(_lagged(x, [d * k for k in range(1, 8)]))
        with np.errstate(invalid="ignore", divide="ignore"):
            lb = np.log((np.maximum(x, 0) + smooth) / (np.maximum(slot, 0) + smooth))
        ab = np.abs(lb)
        ab_f = np.nan_to_num(ab)
        cab = np.concatenate([[0.0], np.cumsum(ab_f)])
        cn = np.concatenate([[0.0], np.cumsum(~np.isnan(ab))])
        with np.errstate(invalid="ignore", divide="ignore"):
            shape = (cab[idx + 1] - cab[lo]) / (cn[idx + 1] - cn[lo])
        feats += [lb, shape]
    return np.column_stack(feats)


def expected_value(x: np.ndarray, per_day: int) -> np.ndarray:
    """What the features compare against, per bucket: slot median (sub-daily) or weekday median (daily)."""
    if per_day > 1:
        return row_median(_lagged(x, [per_day * k for k in range(1, 8)]))
    weekday = row_median(_lagged(x, [7 * k for k in range(1, 5)]))
    return np.where(np.isnan(weekday), row_median(_lagged(x, list(range(1, 8)))), weekday)


class IsolationForestKpi:
    """Per-series Isolation Forest on day-window features; abstains until `min_train` feature rows exist."""

    name = "iforest"

    def __init__(self, *, threshold: float = 1.2, n_estimators: int = 100, min_train: int | None = None,
                 cadence: Cadence | None = None, seed: int = 0, history_days: int = 35,
                 kind: str = "gauge") -> None:
        self.kind = kind
        self.threshold = threshold
        self.n_estimators = n_estimators
        self.min_train = min_train
        self.cadence = cadence
        self.seed = seed
        self.history_days = history_days
        self.model: object | None = None
        self.smooth = 1.0
        self._median = 0.0
        self._spread = 1.0

    def fit(self, times: np.ndarray, values: np.ndarray) -> None:
        from sklearn.ensemble import IsolationForest

        self.model = None
        if len(times) < 2:
            return
        cadence = self.cadence or infer_cadence(times)
        self.cadence = cadence
        _, grid = to_grid(times, values, cadence)
        grid = grid[-self.history_days * cadence.per_day:]
        level = np.nanmedian(np.abs(grid)) if np.isfinite(grid).any() else 0.0
        # smoothing constant: 1 unit for counts in practice, 1 % of the typical level for big series
        self.smooth = float(max(0.01 * level, 1e-6)) if level > 100 else float(max(min(1.0, level), 1e-6))
        if self.kind == "count":
            self.smooth = max(self.smooth, 1.0)  # below one event per bucket, 0 vs 1 is not a 2x change
        feats = day_features(grid, cadence.per_day, self.smooth)
        X = feats[np.isfinite(feats).all(axis=1)]
        need = self.min_train or max(14, 7 * cadence.per_day if cadence.per_day > 1 else 14)
        if X.shape[0] < need:
            return
        model = IsolationForest(n_estimators=self.n_estimators, random_state=self.seed)
        model.fit(X)
        train = -model.score_samples(X)
        med, q99 = row_quantiles(train[None, :], (0.5, 0.99))[:, 0]
        self._median, self._spread = float(med), float(max(q99 - med, 1e-6))
        self.model = model

    def score(self, hist_times: np.ndarray, hist_values: np.ndarray, times: np.ndarray,
              values: np.ndarray) -> KpiScores:
        vals = np.asarray(values, dtype=float)
        if self.model is None or self.cadence is None or len(hist_times) == 0:
            return KpiScores.empty(self.name, vals.size, self.threshold, "if", observed=vals)
        d = self.cadence.per_day
        length = 29 * d + 1  # enough for the 4-week same-weekday lag
        rows, expected = [], []
        for b, v in zip(bucket_index(times, self.cadence), vals, strict=True):
            _, grid = to_grid(hist_times, hist_values, self.cadence, end=int(b), length=length)
            grid = np.append(grid, v)
            rows.append(day_features(grid, d, self.smooth)[-1])
            expected.append(expected_value(grid, d)[-1])
        X = np.vstack(rows)
        ok = np.isfinite(X).all(axis=1)
        raw = np.full(vals.size, np.nan)
        if ok.any():
            raw[ok] = -self.model.score_samples(X[ok])  # type: ignore[attr-defined]
        r = np.maximum((raw - self._median) / self._spread, 0.0)
        exp = np.asarray(expected, dtype=float)
        band = np.full(vals.size, np.nan)
        return KpiScores(self.name, vals.copy(), threshold_score(r, self.threshold), exp, band, band.copy(), r,
                         self.threshold, "if")
