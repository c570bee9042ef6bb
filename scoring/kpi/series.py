"""Time-series plumbing shared by the KPI detectors: cadence, grids, robust row statistics, seasonality.

Everything here works on 2-D matrices (series x buckets) so that one code path serves both a single
series (a 1-row matrix) and a batch of 10,000 series. NaN means "no data in this bucket".

Times are interpreted as the tenant's wall-clock time (naive local datetimes or UTC, chosen by the
caller): the seasonal slot of a bucket only depends on lags in buckets, so any consistent clock works.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Cadences a client is likely to send, in seconds. Observed spacing snaps to the nearest one when it is
# within 10 %, so jittery client timestamps (e.g. a cron sending every ~5 minutes) land on a clean grid.
KNOWN_CADENCES: tuple[int, ...] = (60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 604800)
DAY = 86400
WEEK = 7 * DAY


@dataclass(frozen=True)
class Cadence:
    """Spacing of a series' buckets. `regular` is False for client-sent metrics with uneven spacing."""

    seconds: int
    regular: bool = True

    @property
    def label(self) -> str:
        s = self.seconds
        if s % DAY == 0:
            return f"{s // DAY}d"
        if s % 3600 == 0:
            return f"{s // 3600}h"
        if s % 60 == 0:
            return f"{s // 60}min"
        return f"{s}s"

    @property
    def per_day(self) -> int:
        """Buckets per day (at least 1): the length of a 'day' window in this cadence."""
        return max(1, DAY // self.seconds)

    @property
    def timedelta(self) -> np.timedelta64:
        return np.timedelta64(self.seconds, "s")


def as_seconds(times: object) -> np.ndarray:
    """Any datetime-like array (numpy, pandas, list of datetimes) -> int64 epoch seconds."""
    arr = np.asarray(times)
    if arr.dtype.kind == "M":
        return arr.astype("datetime64[s]").astype(np.int64)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    return np.asarray(arr.astype("datetime64[s]"), dtype="datetime64[s]").astype(np.int64)


def infer_cadence(times: object) -> Cadence:
    """Infer the bucket spacing from timestamps.

    Uses the median spacing (robust to gaps and a few duplicates) snapped to a known cadence; a series is
    irregular when fewer than 80 % of spacings are (multiples of) that cadence. Irregular series are still
    put on a grid of that cadence, keeping the last point of each bucket.
    """
    t = np.unique(as_seconds(times))
    if t.size < 2:
        return Cadence(3600, regular=False)
    d = np.diff(t)
    med = float(np.median(d))
    known = np.asarray(KNOWN_CADENCES, dtype=float)
    rel = np.abs(known - med) / known
    seconds = int(known[np.argmin(rel)]) if rel.min() <= 0.10 else max(1, int(round(med)))
    multiple = d / seconds
    on_grid = np.abs(multiple - np.round(multiple)) <= 0.10
    return Cadence(seconds, regular=bool(np.mean(on_grid & (multiple >= 0.9)) >= 0.8))


def bucket_index(times: object, cadence: Cadence) -> np.ndarray:
    """Epoch-aligned bucket number of each timestamp (floor), so slots line up with the wall clock."""
    return np.floor_divide(as_seconds(times), cadence.seconds)


def to_grid(times: object, values: object, cadence: Cadence, *, end: int | None = None,
            length: int | None = None) -> tuple[int, np.ndarray]:
    """Place a series on a regular grid of `cadence`; returns (first bucket number, values with NaN gaps).

    `end` (exclusive bucket number) and `length` cut the grid to the window a detector needs; when several
    points fall in one bucket the last one wins (client-sent metrics that arrive twice).
    """
    pos = bucket_index(times, cadence)
    vals = np.asarray(values, dtype=float)
    if pos.size and np.any(np.diff(pos) < 0):
        order = np.argsort(pos, kind="stable")
        pos, vals = pos[order], vals[order]
    if end is None:
        end = int(pos[-1]) + 1 if pos.size else 0
    if length is None:
        length = end - (int(pos[0]) if pos.size else end)
    start = end - length
    grid = np.full(length, np.nan)
    keep = (pos >= start) & (pos < end)
    pos, vals = pos[keep], vals[keep]
    if pos.size:
        last = np.r_[pos[1:] != pos[:-1], True]
        grid[pos[last] - start] = vals[last]
    return start, grid


def row_quantiles(a: np.ndarray, qs: tuple[float, ...]) -> np.ndarray:
    """NaN-aware quantiles per row (lower interpolation-free 'midpoint' style), shape (len(qs), rows).

    np.nanmedian/np.nanquantile fall back to a per-row Python loop when NaNs are present; one sort of
    the whole matrix (NaNs sort last) keeps a 10,000-row batch vectorised.
    """
    a = np.asarray(a, dtype=float)
    if a.ndim == 1:
        a = a[None, :]
    out = np.full((len(qs), a.shape[0]), np.nan)
    if a.shape[1] == 0:
        return out
    s = np.sort(a, axis=1)
    n = np.sum(~np.isnan(a), axis=1)
    has = n > 0
    rows = np.arange(a.shape[0])
    for i, q in enumerate(qs):
        pos = q * (np.maximum(n, 1) - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.ceil(pos).astype(np.int64)
        frac = pos - lo
        v = s[rows, lo] * (1 - frac) + s[rows, hi] * frac
        out[i] = np.where(has, v, np.nan)
    return out


def row_median(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=float)
    if a.ndim == 2 and a.shape[1] and not np.isnan(a).any():
        return np.median(a, axis=1)
    return row_quantiles(a, (0.5,))[0]


def candidate_periods(cadence: Cadence) -> tuple[int, ...]:
    """Season lengths (in buckets) worth testing for a cadence: a day and a week when they fit."""
    s = cadence.seconds
    out = []
    for season in (DAY, WEEK):
        if season % s == 0 and season // s >= 2:
            out.append(season // s)
    return tuple(out)


def _moving_average(x: np.ndarray, width: int) -> np.ndarray:
    """Trailing moving average along rows (first width-1 columns: mean of what is available)."""
    c = np.cumsum(x, axis=1)
    out = np.empty_like(x)
    out[:, :width] = c[:, :width] / np.arange(1, min(width, x.shape[1]) + 1)
    if x.shape[1] > width:
        out[:, width:] = (c[:, width:] - c[:, :-width]) / width
    return out


def seasonal_acf(matrix: np.ndarray, lag: int) -> np.ndarray:
    """Autocorrelation at `lag` of each row after removing a trailing moving average of that length.

    Subtracting a one-season moving average removes trend and level shifts but keeps the seasonal
    component, so a random walk does not look seasonal while a daily or weekly pattern does.
    """
    m = np.asarray(matrix, dtype=float)
    S, T = m.shape
    if T <= 2 * lag:
        return np.full(S, np.nan)
    mean = np.nanmean(np.where(np.isnan(m).all(axis=1, keepdims=True), 0.0, m), axis=1, keepdims=True)
    filled = np.where(np.isnan(m), mean, m)
    resid = filled - _moving_average(filled, lag)
    resid = np.where(np.isnan(m), np.nan, resid)[:, lag:]  # first season has no full average
    a, b = resid[:, lag:], resid[:, :-lag]
    ok = ~(np.isnan(a) | np.isnan(b))
    a = np.where(ok, a, 0.0)
    b = np.where(ok, b, 0.0)
    n = np.maximum(ok.sum(axis=1), 1)
    a = a - (a.sum(axis=1) / n)[:, None] * ok
    b = b - (b.sum(axis=1) / n)[:, None] * ok
    den = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a * b).sum(axis=1) / den, np.nan)


def _seasonal_diff_scale(m: np.ndarray, lag: int) -> np.ndarray:
    """Mean absolute lag-`lag` difference: the error of a naive seasonal forecast.

    A mean (not a median) on purpose: a day-of-week effect only shows on 2 of 7 days, which a median
    would ignore; a few past anomalies inflate both candidates alike.
    """
    d = m[:, lag:] - m[:, :-lag]
    return np.nanmean(np.abs(d), axis=1)


def detect_periods(matrix: np.ndarray, candidates: tuple[int, ...], *, min_cycles: int = 3,
                   min_acf: float = 0.3, margin: float = 0.1) -> np.ndarray:
    """Season length per row (0 = not seasonal), chosen among `candidates`.

    A candidate qualifies when its autocorrelation (after removing trend) reaches `min_acf` with at
    least `min_cycles` seasons of history. Among qualifying ones, a longer season (a week) replaces a
    shorter one (a day) only when it predicts clearly better: its seasonal differences are `margin`
    smaller. A week of hours contains the daily pattern, so with no day-of-week effect the daily season
    is kept, which gives 7x more same-slot samples per baseline.
    """
    m = np.asarray(matrix, dtype=float)
    S, T = m.shape
    chosen = np.zeros(S, dtype=np.int64)
    best = np.full(S, np.inf)
    for lag in sorted(candidates):
        if T < min_cycles * lag:
            continue
        acf = np.nan_to_num(seasonal_acf(m, lag), nan=-np.inf)
        scale = np.nan_to_num(_seasonal_diff_scale(m, lag), nan=np.inf)
        win = (acf >= min_acf) & ((chosen == 0) | (scale < (1.0 - margin) * best))
        chosen = np.where(win, lag, chosen)
        best = np.where(win, scale, best)
    return chosen
