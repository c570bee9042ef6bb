"""Seasonal robust z-score: the value against the median of the same slot in previous seasons.

Per series: the season (a day or a week of buckets, whatever the cadence) is detected by
autocorrelation; the expected value is the median of the same slot in up to `max_cycles` previous
seasons (same hour-of-week, day-of-week, or 5-minute slot-of-day); the scale is estimated from seasonal
differences of recent history, so it reflects this series' own noise. Short or non-seasonal history
falls back to a rolling median / MAD of the last buckets.

Scale = the larger of two robust estimates: MAD (efficient for Gaussian noise) and the 95th percentile
of absolute deviations (does not collapse to zero on sparse, zero-inflated series where MAD is 0). Count
series also get a Poisson floor (sd >= sqrt(expected), at least 1), so 0 -> 2 orders at night is noise.
"""

from __future__ import annotations

import numpy as np

from scoring.kpi.base import KpiScores, threshold_score
from scoring.kpi.series import (
    Cadence,
    bucket_index,
    candidate_periods,
    detect_periods,
    infer_cadence,
    row_median,
    row_quantiles,
    to_grid,
)

_MAD_TO_SD = 1.4826
_Q95_TO_SD = 1.0 / 1.96
NONNEGATIVE_KINDS = ("count", "money")


def lookback_buckets(cadence: Cadence, days: int = 35, cap: int = 12_096) -> int:
    """History window a detector keeps: 5 weeks, at least 8 weeks of daily points, at most `cap`."""
    return int(np.clip(days * cadence.per_day, 56, cap)) if cadence.seconds < 7 * 86400 else 104


class SeasonalRobustZ:
    """Median/MAD against the same slot of previous seasons, season detected per series."""

    name = "seasonal_z"

    def __init__(self, *, kind: str = "gauge", z_threshold: float = 4.0, max_cycles: int = 8,
                 min_cycles: int = 3, rolling_window: int | None = None, rel_floor: float = 0.005,
                 cadence: Cadence | None = None) -> None:
        self.kind = kind
        self.z_threshold = z_threshold
        self.max_cycles = max_cycles
        self.min_cycles = min_cycles
        self.rolling_window = rolling_window
        self.rel_floor = rel_floor
        self.cadence = cadence
        self.period: int | None = None  # None: detect at scoring time from the history given

    # -- single series --------------------------------------------------------------------------
    def fit(self, times: np.ndarray, values: np.ndarray) -> None:
        if len(times) < 2:
            self.period = None
            return
        cadence = self.cadence or infer_cadence(times)
        self.cadence = cadence
        _, grid = to_grid(times, values, cadence, length=None)
        grid = grid[-lookback_buckets(cadence):]
        self.period = int(detect_periods(grid[None, :], candidate_periods(cadence),
                                         min_cycles=self.min_cycles)[0])

    def score(self, hist_times: np.ndarray, hist_values: np.ndarray, times: np.ndarray,
              values: np.ndarray) -> KpiScores:
        vals = np.asarray(values, dtype=float)
        cadence = self.cadence or (infer_cadence(hist_times) if len(hist_times) >= 2 else Cadence(3600))
        if len(hist_times) == 0:
            return KpiScores.empty(self.name, vals.size, self.z_threshold, observed=vals)
        length = lookback_buckets(cadence)
        rows = np.empty((vals.size, length + 1))
        for i, b in enumerate(bucket_index(times, cadence)):
            _, rows[i, :length] = to_grid(hist_times, hist_values, cadence, end=int(b), length=length)
        rows[:, -1] = vals
        periods = None if self.period is None else np.full(vals.size, self.period)
        return self.score_latest(rows, cadence, periods=periods)

    # -- batch ----------------------------------------------------------------------------------
    def score_latest(self, matrix: np.ndarray, cadence: Cadence,
                     periods: np.ndarray | None = None) -> KpiScores:
        """Score the last column of every row against the earlier columns (one bucket, many series)."""
        m = np.asarray(matrix, dtype=float)
        hist, cur = m[:, :-1], m[:, -1]
        S, T = hist.shape
        if periods is None:
            periods = detect_periods(hist, candidate_periods(cadence), min_cycles=self.min_cycles)
        periods = np.asarray(periods, dtype=np.int64)
        expected = np.full(S, np.nan)
        sd = np.full(S, np.nan)
        for p in np.unique(periods):
            rows = np.flatnonzero(periods == p)
            k = min(self.max_cycles, T // p) if p > 0 else 0
            if p > 0 and k >= 2:
                e, s = self._seasonal(hist[rows], int(p), k)
            else:
                e, s = self._rolling(hist[rows], cadence)
            expected[rows], sd[rows] = e, s
        if self.kind in NONNEGATIVE_KINDS:
            expected = np.maximum(expected, 0.0)
        sd = np.fmax(sd, self.rel_floor * np.abs(expected))
        sd = np.fmax(sd, 1e-9)
        if self.kind == "count":
            sd = np.fmax(sd, np.sqrt(np.fmax(expected, 1.0)))
        with np.errstate(invalid="ignore", divide="ignore"):
            z = (cur - expected) / sd
            if self.kind == "count":
                # Poisson deviance z, deflated by the series' over-dispersion: a normal z understates a
                # fall to 0 from 30/hour (a near-impossible Poisson event) and overstates 0 -> 3 at night
                mu = np.fmax(expected, 1.0)  # the same floor as the sd: below 1 event, silence is normal
                y = np.fmax(cur, 0.0)
                dev = 2.0 * (np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0) / mu), 0.0) - (y - mu))
                phi = np.fmax(1.0, sd * sd / np.fmax(expected, 1.0))
                z = np.where(np.isfinite(z), np.sign(y - mu) * np.sqrt(np.fmax(dev, 0.0) / phi), np.nan)
        lower = expected - self.z_threshold * sd
        if self.kind in NONNEGATIVE_KINDS:
            lower = np.maximum(lower, 0.0)
        upper = expected + self.z_threshold * sd
        return KpiScores(self.name, cur.copy(), threshold_score(z, self.z_threshold), expected, lower, upper, z,
                         self.z_threshold, "z", {"period": periods.astype(float), "sd": sd})

    @staticmethod
    def _scale(dev: np.ndarray, n_baseline: np.ndarray) -> np.ndarray:
        """Prediction sd from deviations: max(MAD, q95) estimate, widened for estimation noise.

        Two widenings: the expected value is itself a median of n noisy samples (variance ~ pi/2 *
        sd^2 / n), and the scale is estimated from a finite number of deviations (a MAD from 20 points
        is often 30 % low; 1 + 1/sqrt(m) keeps short histories from alarming on ordinary noise).
        """
        med = row_median(dev)
        absdev = np.abs(dev - med[:, None])
        q = row_quantiles(absdev, (0.5, 0.95))
        sd = np.fmax(_MAD_TO_SD * q[0], _Q95_TO_SD * q[1])
        m = np.maximum(np.sum(~np.isnan(dev), axis=1), 1)
        return sd * np.sqrt(1.0 + np.pi / (2.0 * np.maximum(n_baseline, 1))) * (1.0 + 1.0 / np.sqrt(m))

    def _noise_unit(self, level: np.ndarray, typical: np.ndarray) -> np.ndarray:
        """How noise grows with the level, so one scale serves the busy afternoon and the quiet night.

        count: Poisson-like, sd ~ sqrt(level); money: multiplicative, sd ~ level (plus 10 % of the
        typical level so near-zero buckets do not explode); gauge: constant.
        """
        if self.kind == "count":
            return np.sqrt(np.fmax(level, 0.0) + 1.0)
        if self.kind == "money":
            return np.abs(level) + 0.1 * typical + 1e-9
        return np.ones_like(level)

    def _seasonal(self, hist: np.ndarray, p: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        T = hist.shape[1]
        same_slot = hist[:, [T - p * j for j in range(1, k + 1)]]
        expected = row_median(same_slot)
        n = min(T - p, k * p)
        a, b = hist[:, T - n:], hist[:, T - n - p:T - p]
        typical = row_median(np.abs(a))[:, None]
        unit_pair = self._noise_unit((np.abs(a) + np.abs(b)) / 2.0, typical)
        n_slot = np.sum(~np.isnan(same_slot), axis=1)
        # a difference of two noisy points has sqrt(2) times the noise of one
        rel_sd = self._scale((a - b) / unit_pair, n_slot) / np.sqrt(2.0)
        sd = rel_sd * self._noise_unit(np.fmax(expected, 0.0) if self.kind in NONNEGATIVE_KINDS else expected,
                                       typical[:, 0])
        enough = n_slot >= 2
        return np.where(enough, expected, np.nan), np.where(enough, sd, np.nan)

    def _rolling(self, hist: np.ndarray, cadence: Cadence) -> tuple[np.ndarray, np.ndarray]:
        w = self.rolling_window or int(np.clip(cadence.per_day, 12, 168))
        win = hist[:, -w:]
        expected = row_median(win)
        n = np.sum(~np.isnan(win), axis=1)
        sd = self._scale(win, n)
        enough = n >= 3
        return np.where(enough, expected, np.nan), np.where(enough, sd, np.nan)
