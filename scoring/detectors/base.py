"""The detector protocol, the `Scores` result and the helpers the detectors share.

A frame is anything that maps a feature name to a column: `scoring.enrich.FeatureFrame` on the
hot path (a dict of NumPy arrays, no pandas overhead for a single row) or a pandas DataFrame.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
from scipy.special import ndtri

Frame = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a row scored high, in words a risk analyst understands."""

    detector: str
    text: str
    value: float
    threshold: float

    def as_dict(self) -> dict[str, Any]:
        return {"detector": self.detector, "text": self.text, "value": self.value, "threshold": self.threshold}


class Scores:
    """Per-row scores in 0..1 plus reasons built only when someone asks for a row's reasons.

    Building reason strings for 10,000 rows would cost more than scoring them; most rows are never
    looked at, so `explain(i)` is called by the consensus only for rows that end up flagged.
    """

    __slots__ = ("detector", "values", "raw", "_explain")

    def __init__(self, detector: str, values: np.ndarray, raw: np.ndarray | None = None,
                 explain: Callable[[int], list[Reason]] | None = None) -> None:
        self.detector = detector
        self.values = np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0)
        self.raw = self.values if raw is None else np.asarray(raw, dtype=np.float64)
        self._explain = explain

    def __len__(self) -> int:
        return len(self.values)

    def reasons(self, i: int) -> list[Reason]:
        return self._explain(i) if self._explain else []


@runtime_checkable
class Detector(Protocol):
    name: str
    features: tuple[str, ...]

    def fit(self, frame: Frame) -> Detector: ...

    def score(self, frame: Frame) -> Scores: ...

    def to_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """(arrays, params): everything needed to rebuild the fitted detector without pickle."""
        ...


def matrix(frame: Frame, features: tuple[str, ...]) -> np.ndarray:
    """Rows x features float64 matrix; missing values become 0 (the enrichment's neutral value)."""
    cols = [np.asarray(frame[f], dtype=np.float64) for f in features]
    x = np.column_stack(cols) if cols else np.empty((0, 0))
    return np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)


def robust_centre_scale(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column median and a robust standard deviation that is never 0.

    MAD first (x 1.4826 to match a normal SD). When more than half the values are equal (counts
    that are almost always 1, streaks that are almost always 0) the MAD is 0; then the spread is
    read from the upper tail instead: (q99 - median) / 2.326, the SD of a normal law with the
    same 99th percentile, so that a value the reference sees in 1 % of rows gets z = 2.3, not
    z = 1000.

    When even the 99th percentile sits on the median (a flag such as `new_device` that is 1 in
    under 1 % of rows, or a constant column), the scale comes from rarity: with k of n rows off
    the median, the smallest step d seen off it (1 when none is) gets the z of a normal tail of
    the same probability, z(d) = Phi^-1(1 - (k + 0.5) / (n + 1)). A flag set in 0.5 % of rows
    reads z = 2.6; one never seen in 100,000 rows z = 4.4: surprising in proportion to how rare
    it was, never the near-zero scale that made every occurrence extreme.
    """
    med = np.median(x, axis=0)
    dev = np.abs(x - med)
    mad = 1.4826 * np.median(dev, axis=0)
    tail = (np.quantile(x, 0.99, axis=0) - med) / 2.326 if len(x) else np.zeros_like(med)
    off = dev > 0
    k = off.sum(axis=0)
    step = np.where(k > 0, np.where(off, dev, np.inf).min(axis=0, initial=np.inf), 1.0)
    rarity = step / ndtri(1.0 - (k + 0.5) / (len(x) + 1.0))
    scale = np.where(mad > 0, mad, np.where(tail > 0, tail, rarity))
    return med, scale


def fmt(v: float) -> str:
    """Numbers for reason texts: integers without decimals, others with 2 significant decimals."""
    if float(v).is_integer():
        return f"{int(v):,}"
    return f"{v:,.2f}"
