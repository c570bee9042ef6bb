"""Ratio KPIs (CTR, conversion, AOV, return rate, payment failure rate) and a significance-aware detector.

Ratios are always computed from summed numerators and denominators (pooled), never as the average of
per-bucket ratios: 1/2 and 100/1000 pool to 101/1002, not to 0.3.

`BinomialRatioDetector` judges proportions (CTR, conversion, return rate, failure rate) by how
surprising the observed count is given the expected rate and THIS bucket's denominator: 0 clicks out of
3 impressions is not evidence of anything, 0 out of 1,000 at a 2 % CTR is. The statistic is the signed
likelihood-ratio z of "this bucket's rate differs from the baseline's" (a G-test on the 2x2 table, so
a thin baseline is as uncertain as a thin bucket; accurate in the tails where a normal approximation
is not),
deflated by the series' own over-dispersion (real rates wander more than pure binomial noise; that
excess is estimated from history, so a 1M-impression campaign does not alarm on a 1 % wobble).
AOV is a mean of amounts, not a proportion: score it with the seasonal z on the pooled AOV series.
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
    to_grid,
)


def pooled_rate(numerator: object, denominator: object, axis: int | None = None) -> np.ndarray:
    """sum(numerator) / sum(denominator) along `axis` (NaN when the denominator sums to 0)."""
    num = np.nansum(np.asarray(numerator, dtype=float), axis=axis)
    den = np.nansum(np.asarray(denominator, dtype=float), axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def ctr(clicks: object, impressions: object, axis: int | None = None) -> np.ndarray:
    return pooled_rate(clicks, impressions, axis)


def conversion_rate(orders: object, sessions: object, axis: int | None = None) -> np.ndarray:
    return pooled_rate(orders, sessions, axis)


def aov(revenue: object, orders: object, axis: int | None = None) -> np.ndarray:
    return pooled_rate(revenue, orders, axis)


def return_rate(returns: object, orders: object, axis: int | None = None) -> np.ndarray:
    return pooled_rate(returns, orders, axis)


def payment_failure_rate(failed: object, attempts: object, axis: int | None = None) -> np.ndarray:
    return pooled_rate(failed, attempts, axis)


def wilson_interval(k: object, n: object, z: float = 1.96) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a proportion k/n (vectorised; n = 0 gives the whole 0..1 range)."""
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    safe = np.where(n > 0, n, 1.0)
    p = np.where(n > 0, k / safe, 0.5)
    z2 = z * z
    den = 1.0 + z2 / safe
    centre = (p + z2 / (2 * safe)) / den
    half = z * np.sqrt(p * (1 - p) / safe + z2 / (4 * safe * safe)) / den
    lo = np.where(n > 0, np.clip(centre - half, 0.0, 1.0), 0.0)
    hi = np.where(n > 0, np.clip(centre + half, 0.0, 1.0), 1.0)
    return lo, hi


def binomial_deviance_z(k: np.ndarray, n: np.ndarray, p0: np.ndarray) -> np.ndarray:
    """Signed likelihood-ratio z of observing k successes in n trials when the rate is p0."""
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    p0 = np.clip(np.asarray(p0, dtype=float), 1e-9, 1 - 1e-9)
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = np.where(k > 0, k * np.log(k / (n * p0)), 0.0)
        t2 = np.where(n - k > 0, (n - k) * np.log((n - k) / (n * (1 - p0))), 0.0)
    dev = np.maximum(2.0 * (t1 + t2), 0.0)
    sign = np.sign(k - n * p0)
    return np.where(n > 0, sign * np.sqrt(dev), np.nan)


def _xlogx_ratio(o: np.ndarray, e: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(o > 0, o * np.log(o / np.where(e > 0, e, 1.0)), 0.0)


def binomial_two_sample_z(k: np.ndarray, n: np.ndarray, k0: np.ndarray, n0: np.ndarray) -> np.ndarray:
    """Signed likelihood-ratio (G-test) z that k/n differs from the baseline k0/n0.

    Unlike a one-sample test against k0/n0, this accounts for the baseline's own uncertainty: a campaign
    with 0 clicks in its last 72 impressions does not make 1 click out of 4 a miracle.
    """
    k, n, k0, n0 = (np.asarray(x, dtype=float) for x in (k, n, k0, n0))
    tot = n + n0
    p = np.where(tot > 0, (k + k0) / np.where(tot > 0, tot, 1.0), 0.0)
    g = 2.0 * (_xlogx_ratio(k, n * p) + _xlogx_ratio(n - k, n * (1 - p))
               + _xlogx_ratio(k0, n0 * p) + _xlogx_ratio(n0 - k0, n0 * (1 - p)))
    with np.errstate(divide="ignore", invalid="ignore"):
        sign = np.sign(k / np.where(n > 0, n, 1.0) - k0 / np.where(n0 > 0, n0, 1.0))
    return np.where((n > 0) & (n0 > 0), sign * np.sqrt(np.fmax(g, 0.0)), np.nan)


class BinomialRatioDetector:
    """Proportion KPI detector. `values` are (numerator, denominator) pairs, shape (n, 2)."""

    name = "ratio_binomial"

    def __init__(self, *, z_threshold: float = 4.0, max_cycles: int = 8, rolling_window: int | None = None,
                 cadence: Cadence | None = None) -> None:
        self.z_threshold = z_threshold
        self.max_cycles = max_cycles
        self.rolling_window = rolling_window
        self.cadence = cadence
        self.period: int | None = None

    def fit(self, times: np.ndarray, values: np.ndarray) -> None:
        if len(times) < 2:
            self.period = None
            return
        cadence = self.cadence or infer_cadence(times)
        self.cadence = cadence
        v = np.asarray(values, dtype=float).reshape(-1, 2)
        _, num = to_grid(times, v[:, 0], cadence)
        _, den = to_grid(times, v[:, 1], cadence)
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = np.where(den > 0, num / den, np.nan)
        self.period = int(detect_periods(rate[None, -35 * cadence.per_day:], candidate_periods(cadence))[0])

    def score(self, hist_times: np.ndarray, hist_values: np.ndarray, times: np.ndarray,
              values: np.ndarray) -> KpiScores:
        v = np.asarray(values, dtype=float).reshape(-1, 2)
        hv = np.asarray(hist_values, dtype=float).reshape(-1, 2)
        cadence = self.cadence or (infer_cadence(hist_times) if len(hist_times) >= 2 else Cadence(3600))
        length = int(np.clip(35 * cadence.per_day, 56, 12_096))
        num = np.empty((len(v), length + 1))
        den = np.empty((len(v), length + 1))
        for i, b in enumerate(bucket_index(times, cadence)):
            _, num[i, :length] = to_grid(hist_times, hv[:, 0], cadence, end=int(b), length=length)
            _, den[i, :length] = to_grid(hist_times, hv[:, 1], cadence, end=int(b), length=length)
        num[:, -1], den[:, -1] = v[:, 0], v[:, 1]
        periods = None if self.period is None else np.full(len(v), self.period)
        return self.score_latest(num, den, cadence, periods=periods)

    def score_latest(self, numerators: np.ndarray, denominators: np.ndarray, cadence: Cadence,
                     periods: np.ndarray | None = None) -> KpiScores:
        """Score the last column of many (numerator, denominator) series at once."""
        num = np.asarray(numerators, dtype=float)
        den = np.asarray(denominators, dtype=float)
        hn, hd = num[:, :-1], den[:, :-1]
        k, n = num[:, -1], den[:, -1]
        S, T = hn.shape
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = np.where(hd > 0, hn / np.where(hd > 0, hd, 1.0), np.nan)
        if periods is None:
            periods = detect_periods(rate, candidate_periods(cadence))
        periods = np.asarray(periods, dtype=np.int64)
        p0 = np.full(S, np.nan)
        k0 = np.full(S, np.nan)
        n0 = np.full(S, np.nan)
        tau2 = np.full(S, np.nan)
        for p in np.unique(periods):
            rows = np.flatnonzero(periods == p)
            c = min(self.max_cycles, T // p) if p > 0 else 0
            if p > 0 and c >= 2:
                cols = [T - p * j for j in range(1, c + 1)]
                k0[rows] = np.nansum(hn[np.ix_(rows, cols)], axis=1)
                n0[rows] = np.nansum(hd[np.ix_(rows, cols)], axis=1)
                m = min(T - p, c * p)
                dev = (rate[rows, T - m:] - rate[rows, T - m - p:T - p]) / np.sqrt(2.0)
                dens = hd[rows, T - m:]
            else:
                w = self.rolling_window or int(np.clip(cadence.per_day, 12, 168))
                k0[rows] = np.nansum(hn[rows, -w:], axis=1)
                n0[rows] = np.nansum(hd[rows, -w:], axis=1)
                dev = rate[rows, -w:] - row_median(rate[rows, -w:])[:, None]
                dens = hd[rows, -w:]
            p0[rows] = np.where(n0[rows] > 0, k0[rows] / np.where(n0[rows] > 0, n0[rows], 1.0), np.nan)
            robust_var = (1.4826 * row_median(np.abs(dev - row_median(dev)[:, None]))) ** 2
            pr = p0[rows][:, None]
            with np.errstate(invalid="ignore", divide="ignore"):
                binom_var = row_median(np.where(dens > 0, pr * (1 - pr) / np.where(dens > 0, dens, 1.0), np.nan))
            tau2[rows] = np.fmax(np.nan_to_num(robust_var - binom_var, nan=0.0), 0.0)
        pq = np.clip(p0, 1e-9, 1 - 1e-9) * (1 - np.clip(p0, 1e-9, 1 - 1e-9))
        safe_n = np.where(n > 0, n, 1.0)
        # quasi-binomial: the variance at this denominator is binomial * phi, phi >= 1 from history
        phi = 1.0 + safe_n * tau2 / pq
        z = binomial_two_sample_z(k, n, k0, n0) / np.sqrt(phi)
        sd = np.sqrt(pq / safe_n * phi)
        with np.errstate(invalid="ignore", divide="ignore"):
            observed = np.where(n > 0, k / safe_n, np.nan)
        lo_w, hi_w = wilson_interval(k, n, self.z_threshold)
        z = np.where(np.isfinite(p0) & (n > 0), z, np.nan)
        return KpiScores(self.name, observed, threshold_score(z, self.z_threshold), p0,
                         np.clip(p0 - self.z_threshold * sd, 0, 1), np.clip(p0 + self.z_threshold * sd, 0, 1),
                         z, self.z_threshold, "z", {"period": periods.astype(float), "denominator": n,
                                                    "wilson_lower": lo_w, "wilson_upper": hi_w,
                                                    # what a run of buckets needs to pool its evidence
                                                    "k0": k0, "n0": n0, "phi": phi})
