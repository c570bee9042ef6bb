"""The protocol every KPI detector follows, and the two ways of running one.

A detector answers, for a bucket at time t, "how unusual is this value given everything before t?".
Scores are 0..1 and every detector maps its own statistic so that 0.5 is exactly its anomaly threshold
(score = r / (1 + r) with r = statistic / threshold), which lets consensus compare detectors without
knowing their units. NaN score means the detector abstains (not enough history, no model yet).

No look-ahead: `evaluate_series` walks a history in timestamp order and scores the bucket at t with
points strictly before t, fitting models on a schedule whose boundaries depend only on timestamps
(`refit_every`). A live runner that fits at the same boundaries and scores each bucket when it closes
therefore produces exactly the same scores as a backfill of the same data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

# One `Reason` for every detector, transaction or KPI: `{detector, text, value, threshold}`.
from scoring.detectors.base import Reason
from scoring.kpi.series import Cadence, as_seconds

UP = 1
DOWN = -1


def threshold_score(stat: np.ndarray, threshold: float) -> np.ndarray:
    """Map a non-negative statistic to 0..1 with 0.5 exactly at `threshold` (NaN stays NaN)."""
    r = np.abs(np.asarray(stat, dtype=float)) / threshold
    with np.errstate(invalid="ignore"):
        return r / (1.0 + r)


@dataclass
class KpiScores:
    """Per-point output of one detector; every array has one entry per scored point (or series)."""

    detector: str
    observed: np.ndarray
    score: np.ndarray
    expected: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    stat: np.ndarray  # the detector's native statistic (z, interval ratio, ...), signed when meaningful
    threshold: float  # native threshold on |stat| that maps to score 0.5
    unit: str = "z"
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.score.shape[0])

    @property
    def direction(self) -> np.ndarray:
        """+1 up, -1 down, 0 unknown: observed vs expected."""
        d = np.sign(np.nan_to_num(self.observed - self.expected))
        return d.astype(np.int8)

    def flags(self, cut: float = 0.5) -> np.ndarray:
        return np.nan_to_num(self.score, nan=0.0) >= cut

    def reasons(self, i: int) -> list[Reason]:
        """Reasons for point i, built lazily: only anomalous points need text."""
        if not np.isfinite(self.score[i]):
            return []
        word = "above" if self.observed[i] > self.expected[i] else "below"
        text = (f"observed {self.observed[i]:.4g} {word} expected {self.expected[i]:.4g} "
                f"(band {self.lower[i]:.4g}..{self.upper[i]:.4g}, {self.unit}={self.stat[i]:.2f})")
        return [Reason(self.detector, text, float(self.stat[i]), float(self.threshold))]

    @classmethod
    def empty(cls, detector: str, n: int, threshold: float, unit: str = "z",
              observed: np.ndarray | None = None) -> KpiScores:
        nan = np.full(n, np.nan)
        obs = nan.copy() if observed is None else np.asarray(observed, dtype=float).copy()
        return cls(detector, obs, nan.copy(), nan.copy(), nan.copy(), nan.copy(), nan.copy(), threshold, unit)

    @classmethod
    def concat(cls, parts: Sequence[KpiScores]) -> KpiScores:
        first = parts[0]
        cat = lambda name: np.concatenate([getattr(p, name) for p in parts])  # noqa: E731
        keys = set().union(*(p.extra.keys() for p in parts))
        extra = {k: np.concatenate([p.extra.get(k, np.full(len(p), np.nan)) for p in parts]) for k in keys}
        return cls(first.detector, cat("observed"), cat("score"), cat("expected"), cat("lower"), cat("upper"),
                   cat("stat"), first.threshold, first.unit, extra)


@runtime_checkable
class KpiDetector(Protocol):
    """fit() learns slow state (season, model) from history; score() judges points against history.

    `score(hist_times, hist_values, times, values)` scores every point of (times, values) as "the next
    bucket after the history": it may only use the fitted state and the given history.
    """

    name: str

    def fit(self, times: np.ndarray, values: np.ndarray) -> None: ...

    def score(self, hist_times: np.ndarray, hist_values: np.ndarray, times: np.ndarray,
              values: np.ndarray) -> KpiScores: ...


@runtime_checkable
class BatchKpiDetector(KpiDetector, Protocol):
    """A detector that can score the latest bucket of many aligned series in one vectorised pass."""

    def score_latest(self, matrix: np.ndarray, cadence: Cadence) -> KpiScores: ...


def _schedule_boundary(t: int, refit_every: int | None) -> int:
    """Epoch-aligned start of the fitting period containing t (seconds); None means refit at every t."""
    if refit_every is None:
        return t
    return (t // refit_every) * refit_every


def _to_seconds(delta: object | None) -> int | None:
    if delta is None:
        return None
    if isinstance(delta, np.timedelta64):
        return int(delta.astype("timedelta64[s]").astype(np.int64))
    if isinstance(delta, (int, np.integer)):
        return int(delta)
    if hasattr(delta, "total_seconds"):  # datetime.timedelta, pandas.Timedelta
        return int(delta.total_seconds())  # type: ignore[union-attr]
    raise TypeError(f"refit_every must be seconds or a timedelta, not {type(delta).__name__}")


def evaluate_series(times: object, values: object, detector: KpiDetector, *,
                    refit_every: object | None = None, start: object | None = None) -> KpiScores:
    """Score every point of a series in timestamp order with no look-ahead (the backfill path).

    The bucket at t is scored with history = points with time < t. The detector is (re)fitted on the
    points before the start of each `refit_every` period (epoch aligned; None = before every point),
    which is what a live scheduler does. `start` skips scoring (not history) of earlier points.
    """
    t = as_seconds(times)
    v = np.asarray(values, dtype=float)
    order = np.argsort(t, kind="stable")
    t, v = t[order], v[order]
    every = _to_seconds(refit_every)
    first = 0 if start is None else int(np.searchsorted(t, int(as_seconds(np.asarray([start]))[0])))
    parts: list[KpiScores] = []
    if first > 0:
        head = v[:first] if v.ndim == 1 else v[:first, 0] / np.where(v[:first, 1] > 0, v[:first, 1], np.nan)
        parts.append(KpiScores.empty(detector.name, first, np.nan, observed=head))
    fitted_at: int | None = None
    dt = t.astype("datetime64[s]")
    for i in range(first, t.size):
        boundary = _schedule_boundary(int(t[i]), every)
        if boundary != fitted_at:
            n_fit = int(np.searchsorted(t, boundary, side="left"))
            detector.fit(dt[:n_fit], v[:n_fit])
            fitted_at = boundary
        n_hist = int(np.searchsorted(t, t[i], side="left"))  # strictly before t
        parts.append(detector.score(dt[:n_hist], v[:n_hist], dt[i:i + 1], v[i:i + 1]))
    if not parts:
        return KpiScores.empty(detector.name, 0, np.nan)
    out = KpiScores.concat(parts)
    out.threshold = parts[-1].threshold
    # back to the caller's order
    inv = np.empty_like(order)
    inv[order] = np.arange(order.size)
    return _take(out, inv)


def _take(s: KpiScores, idx: np.ndarray) -> KpiScores:
    return KpiScores(s.detector, s.observed[idx], s.score[idx], s.expected[idx], s.lower[idx], s.upper[idx],
                     s.stat[idx], s.threshold, s.unit, {k: a[idx] for k, a in s.extra.items()})


def evaluate_latest(matrix: np.ndarray, detector: BatchKpiDetector, cadence: Cadence) -> KpiScores:
    """Score the last column of a (series x buckets) matrix of aligned series, history = earlier columns.

    This is the live path when a bucket closes: one vectorised pass over all series of a cadence.
    """
    m = np.asarray(matrix, dtype=float)
    if m.ndim != 2 or m.shape[1] < 1:
        raise ValueError("matrix must be 2-D (series x buckets) with the bucket to score in the last column")
    return detector.score_latest(m, cadence)
