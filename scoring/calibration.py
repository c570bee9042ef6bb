"""Map each detector's raw scores to calibrated values so that one threshold means the same thing
for every detector and every tenant.

- `PercentileCalibrator`: empirical CDF of the tenant's recent raw scores, kept as a compact
  sketch of 1,001 quantiles (JSON). 0.99 means "higher than 99 % of this tenant's recent
  traffic" whatever the detector's raw scale. Needs no labels, so it is the default.
- `IsotonicCalibrator` / `PlattCalibrator`: when labels exist (analyst feedback, chargebacks),
  map raw scores to a probability of fraud; isotonic when there are enough labels, Platt
  (a 2-parameter logistic) when there are few.

All calibrators serialise to a dict (`to_dict` / `calibrator_from_dict`) for Tenant config or the
model registry, never to pickle.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

N_QUANTILES = 1001


class Calibrator(Protocol):
    kind: str

    def transform(self, raw: np.ndarray) -> np.ndarray: ...

    def to_dict(self) -> dict[str, Any]: ...


class PercentileCalibrator:
    kind = "percentile"

    def __init__(self, quantiles: np.ndarray, n_reference: int = 0) -> None:
        q = np.asarray(quantiles, dtype=np.float64)
        if q.ndim != 1 or q.size < 2 or np.any(np.diff(q) < 0) or not np.all(np.isfinite(q)):
            raise ValueError("quantiles must be a finite, non-decreasing 1-D array of at least 2 values")
        self.quantiles = q
        self.probs = np.linspace(0.0, 1.0, q.size)
        self.n_reference = int(n_reference)

    @classmethod
    def fit(cls, raw: np.ndarray, n_quantiles: int = N_QUANTILES) -> PercentileCalibrator:
        raw = np.asarray(raw, dtype=np.float64)
        raw = raw[np.isfinite(raw)]
        if raw.size == 0:
            raise ValueError("no finite reference scores to calibrate on")
        return cls(np.quantile(raw, np.linspace(0.0, 1.0, n_quantiles)), n_reference=raw.size)

    def transform(self, raw: np.ndarray) -> np.ndarray:
        """Mid-rank empirical CDF interpolated between sketch quantiles.

        Ties matter: many detectors give the same raw score to most rows (e.g. 0 inside the
        fences). A value equal to a block of tied quantiles gets the middle of that block, not
        its top, so that "everything normal" does not come out as a high percentile.
        """
        x = np.nan_to_num(np.asarray(raw, dtype=np.float64), nan=-np.inf)
        q, p = self.quantiles, self.probs
        lo = np.searchsorted(q, x, side="left")
        hi = np.searchsorted(q, x, side="right")
        tied = hi > lo
        mid = 0.5 * (p[np.clip(lo, 0, q.size - 1)] + p[np.clip(hi - 1, 0, q.size - 1)])
        # strictly between q[lo-1] and q[lo]: linear interpolation of the CDF
        i = np.clip(lo, 1, q.size - 1)
        span = q[i] - q[i - 1]
        frac = np.where(span > 0, (x - q[i - 1]) / np.where(span > 0, span, 1.0), 0.5)
        between = p[i - 1] + np.clip(frac, 0.0, 1.0) * (p[i] - p[i - 1])
        out = np.where(tied, mid, between)
        out = np.where(lo == 0, np.where(tied, mid, 0.0), out)
        out = np.where(lo >= q.size, 1.0, out)
        return np.clip(out, 0.0, 1.0)

    def to_dict(self) -> dict[str, Any]:
        # 6 significant digits keep the sketch small (~12 KB of JSON) and are far finer than
        # the resolution of 1,001 quantiles.
        return {"kind": self.kind, "n_reference": self.n_reference,
                "quantiles": [float(f"{v:.6g}") for v in self.quantiles]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PercentileCalibrator:
        q = np.maximum.accumulate(np.asarray(d["quantiles"], dtype=np.float64))  # rounding-safe
        return cls(q, n_reference=d.get("n_reference", 0))


class IsotonicCalibrator:
    """Monotone step function raw -> P(fraud), fitted by sklearn, stored as its breakpoints."""

    kind = "isotonic"

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x = np.asarray(x, dtype=np.float64)
        self.y = np.asarray(y, dtype=np.float64)

    @classmethod
    def fit(cls, raw: np.ndarray, labels: np.ndarray) -> IsotonicCalibrator:
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip", increasing=True)
        iso.fit(np.asarray(raw, dtype=np.float64), np.asarray(labels, dtype=np.float64))
        return cls(iso.X_thresholds_, iso.y_thresholds_)

    def transform(self, raw: np.ndarray) -> np.ndarray:
        return np.interp(np.asarray(raw, dtype=np.float64), self.x, self.y)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "x": self.x.tolist(), "y": self.y.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IsotonicCalibrator:
        return cls(np.asarray(d["x"]), np.asarray(d["y"]))


class PlattCalibrator:
    """P(fraud) = 1 / (1 + exp(-(a * raw + b))), for when labels are too few for isotonic."""

    kind = "platt"

    def __init__(self, a: float, b: float) -> None:
        self.a, self.b = float(a), float(b)

    @classmethod
    def fit(cls, raw: np.ndarray, labels: np.ndarray) -> PlattCalibrator:
        from sklearn.linear_model import LogisticRegression

        y = np.asarray(labels, dtype=int)
        if len(np.unique(y)) < 2:
            raise ValueError("Platt scaling needs both positive and negative labels")
        lr = LogisticRegression(C=1e6).fit(np.asarray(raw, dtype=np.float64).reshape(-1, 1), y)
        return cls(lr.coef_[0, 0], lr.intercept_[0])

    def transform(self, raw: np.ndarray) -> np.ndarray:
        z = self.a * np.asarray(raw, dtype=np.float64) + self.b
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "a": self.a, "b": self.b}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PlattCalibrator:
        return cls(d["a"], d["b"])


_KINDS: dict[str, Any] = {c.kind: c for c in (PercentileCalibrator, IsotonicCalibrator, PlattCalibrator)}


def calibrator_from_dict(d: dict[str, Any]) -> Calibrator:
    try:
        cls = _KINDS[d["kind"]]
    except KeyError as exc:
        raise ValueError(f"unknown calibrator kind {d.get('kind')!r}") from exc
    return cls.from_dict(d)


def fit_calibrator(raw: np.ndarray, labels: np.ndarray | None = None, *, min_isotonic_labels: int = 200,
                   min_positives: int = 10) -> Calibrator:
    """Pick the calibrator the data supports: isotonic with plenty of labels (both classes),
    Platt with a few, otherwise the label-free percentile sketch."""
    raw = np.asarray(raw, dtype=np.float64)
    if labels is not None:
        y = np.asarray(labels, dtype=bool)
        pos, neg = int(y.sum()), int((~y).sum())
        if pos >= min_positives and neg >= min_positives:
            if y.size >= min_isotonic_labels:
                return IsotonicCalibrator.fit(raw, y)
            return PlattCalibrator.fit(raw, y)
        if pos >= 2 and neg >= 2:
            return PlattCalibrator.fit(raw, y)
    return PercentileCalibrator.fit(raw)
