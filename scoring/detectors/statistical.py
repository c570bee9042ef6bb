"""Robust z-score and IQR detectors: per-feature fences learnt on a reference frame."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from scipy.special import erf

from scoring.detectors.base import Frame, Reason, Scores, fmt, matrix, robust_centre_scale
from scoring.features import DETECTOR_FEATURES, label

Direction = Literal["upper", "both"]


class _PerFeature:
    """Shared plumbing: feature list, fitted per-feature arrays, state export."""

    name: str = ""
    _state_keys: tuple[str, ...] = ()

    def __init__(self, features: tuple[str, ...] = DETECTOR_FEATURES, direction: Direction = "upper") -> None:
        if direction not in ("upper", "both"):
            raise ValueError("direction must be 'upper' or 'both'")
        self.features = tuple(features)
        # Fraud shows up as MORE velocity, more customers per IP, a longer failure streak...:
        # small values of those features are normal, so by default only the upper side counts.
        self.direction = direction
        self._fitted: dict[str, np.ndarray] = {}

    def _check(self) -> None:
        if not self._fitted:
            raise RuntimeError(f"{self.name}: fit() or from_state() first")

    def to_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        self._check()
        return dict(self._fitted), {"features": list(self.features), "direction": self.direction,
                                    **self._params()}

    def _params(self) -> dict[str, Any]:
        return {}


class RobustZDetector(_PerFeature):
    """Largest robust z-score (|x - median| / robust SD) over the features.

    values = 2 * Phi(z) - 1, i.e. the share of a normal population closer to the centre than
    this row: monotone in z, 0 at the median, 0.9973 at z = 3. The per-tenant calibration
    maps it to a percentile afterwards, so the exact squashing only matters for readability.
    """

    name = "robust_z"

    def __init__(self, features: tuple[str, ...] = DETECTOR_FEATURES, direction: Direction = "upper",
                 threshold: float = 3.5) -> None:
        super().__init__(features, direction)
        self.threshold = float(threshold)  # Iglewicz & Hoaglin's customary cut for modified z

    def _params(self) -> dict[str, Any]:
        return {"threshold": self.threshold}

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], params: dict[str, Any]) -> RobustZDetector:
        det = cls(tuple(params["features"]), params["direction"], params["threshold"])
        det._fitted = {"median": np.asarray(arrays["median"], float), "scale": np.asarray(arrays["scale"], float)}
        return det

    def fit(self, frame: Frame) -> RobustZDetector:
        med, scale = robust_centre_scale(matrix(frame, self.features))
        self._fitted = {"median": med, "scale": scale}
        return self

    def score(self, frame: Frame) -> Scores:
        self._check()
        x = matrix(frame, self.features)
        med, scale = self._fitted["median"], self._fitted["scale"]
        z = (x - med) / scale
        z = np.maximum(z, 0.0) if self.direction == "upper" else np.abs(z)
        zmax = z.max(axis=1) if z.shape[1] else np.zeros(len(x))
        values = erf(zmax / np.sqrt(2.0))

        def explain(i: int) -> list[Reason]:
            order = np.argsort(-z[i])[:3]
            out = []
            for j in order:
                if z[i, j] < self.threshold:
                    break
                side = "above" if x[i, j] >= med[j] else "below"
                limit = med[j] + self.threshold * scale[j] * (1 if side == "above" else -1)
                out.append(Reason(self.name, f"{label(self.features[j])} is {fmt(x[i, j])}, "
                                  f"{z[i, j]:.1f} robust SDs {side} the usual {fmt(med[j])}",
                                  float(x[i, j]), float(limit)))
            return out

        return Scores(self.name, values, raw=zmax, explain=explain)


class IQRDetector(_PerFeature):
    """Tukey fences: distance beyond Q3 + k*IQR (or below Q1 - k*IQR), in IQR units.

    values = logistic(2 * excess): 0.5 exactly at the fence, about 0.05 at Q3, 0.88 one IQR
    beyond the fence. When the IQR is 0 (a count that is almost always 1) the robust SD
    stands in for it, rescaled to IQR units (IQR = 1.349 SD for a normal law).
    """

    name = "iqr"

    def __init__(self, features: tuple[str, ...] = DETECTOR_FEATURES, direction: Direction = "upper",
                 k: float = 1.5) -> None:
        super().__init__(features, direction)
        self.k = float(k)

    def _params(self) -> dict[str, Any]:
        return {"k": self.k}

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], params: dict[str, Any]) -> IQRDetector:
        det = cls(tuple(params["features"]), params["direction"], params["k"])
        det._fitted = {k: np.asarray(arrays[k], float) for k in ("q1", "q3", "iqr")}
        return det

    def fit(self, frame: Frame) -> IQRDetector:
        x = matrix(frame, self.features)
        q1, q3 = np.percentile(x, [25, 75], axis=0)
        _, scale = robust_centre_scale(x)
        iqr = np.where(q3 - q1 > 0, q3 - q1, 1.349 * scale)
        self._fitted = {"q1": q1, "q3": q3, "iqr": iqr}
        return self

    def score(self, frame: Frame) -> Scores:
        self._check()
        x = matrix(frame, self.features)
        q1, q3, iqr = self._fitted["q1"], self._fitted["q3"], self._fitted["iqr"]
        upper, lower = q3 + self.k * iqr, q1 - self.k * iqr
        excess = (x - upper) / iqr
        if self.direction == "both":
            excess = np.maximum(excess, (lower - x) / iqr)
        emax = excess.max(axis=1) if excess.shape[1] else np.full(len(x), -np.inf)
        values = 1.0 / (1.0 + np.exp(-2.0 * np.clip(emax, -50, 50)))

        def explain(i: int) -> list[Reason]:
            order = np.argsort(-excess[i])[:3]
            out = []
            for j in order:
                if excess[i, j] <= 0:
                    break
                above = x[i, j] > upper[j]
                fence = upper[j] if above else lower[j]
                out.append(Reason(self.name, f"{label(self.features[j])} is {fmt(x[i, j])}, "
                                  f"{'above' if above else 'below'} the usual range "
                                  f"{fmt(q1[j])}..{fmt(q3[j])} (fence {fmt(fence)})",
                                  float(x[i, j]), float(fence)))
            return out

        return Scores(self.name, values, raw=emax, explain=explain)
