"""Distribution drift between a reference window (what the active model was trained on) and a recent
window: Population Stability Index and two-sample Kolmogorov–Smirnov, per feature and for scores.

Why both: PSI (on reference-quantile bins) measures how much mass moved and has well-known
rule-of-thumb levels (< 0.1 stable, 0.1–0.25 moderate, > 0.25 major); KS is bin-free and sensitive
to a shift in location of a continuous feature. With tens of thousands of rows the KS p-value is
tiny for shifts nobody cares about, so the level uses the KS STATISTIC (effect size) and the
p-value only guards small samples. Pure NumPy, no Django.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

Level = Literal["none", "moderate", "major"]
LEVELS: tuple[Level, ...] = ("none", "moderate", "major")


@dataclass(frozen=True, slots=True)
class DriftThresholds:
    psi_moderate: float = 0.1
    psi_major: float = 0.25
    ks_moderate: float = 0.1
    ks_major: float = 0.2
    ks_alpha: float = 0.01
    n_bins: int = 10
    # Fewer rows than this on either side: no verdict (the statistics would be noise).
    min_rows: int = 200


@dataclass(frozen=True, slots=True)
class FeatureDrift:
    name: str
    psi: float
    ks: float
    ks_pvalue: float
    level: Level
    reference_mean: float
    recent_mean: float
    n_reference: int
    n_recent: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class DriftResult:
    level: Level
    features: list[FeatureDrift]
    score: FeatureDrift | None
    n_reference: int
    n_recent: int
    notes: list[str] = field(default_factory=list)

    @property
    def drifted(self) -> list[FeatureDrift]:
        return [f for f in self.features if f.level != "none"]

    def as_dict(self) -> dict[str, Any]:
        return {"level": self.level, "n_reference": self.n_reference, "n_recent": self.n_recent,
                "score": self.score.as_dict() if self.score else None,
                "features": [f.as_dict() for f in self.features], "notes": self.notes}


def _clean(x: Any) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).ravel()
    return a[np.isfinite(a)]


def psi(reference: Any, recent: Any, n_bins: int = 10, eps: float = 1e-4) -> float:
    """PSI = sum((q - p) * ln(q / p)) over bins cut at the reference's quantiles.

    Quantile edges adapt to each feature's scale; duplicate edges (a count that is 1 in 80 % of
    rows) collapse, so a discrete feature gets one bin per distinct value it has in the reference
    tail instead of empty bins. Values outside the reference range land in the open end bins."""
    ref, rec = _clean(reference), _clean(recent)
    if ref.size == 0 or rec.size == 0:
        return float("nan")
    edges = np.unique(np.quantile(ref, np.linspace(0.0, 1.0, n_bins + 1)[1:-1]))
    if edges.size == 0:
        # Constant reference: two bins, "equal to it" and "different".
        c = ref[0]
        p = np.array([1.0, 0.0])
        q = np.array([np.mean(rec == c), np.mean(rec != c)])
    else:
        # side="left": a value equal to an edge goes with the values below it, so a discrete
        # value is one bin.
        p = np.bincount(np.searchsorted(edges, ref, side="left"), minlength=edges.size + 1) / ref.size
        q = np.bincount(np.searchsorted(edges, rec, side="left"), minlength=edges.size + 1) / rec.size
    p = np.clip(p, eps, None)
    q = np.clip(q, eps, None)
    return float(np.sum((q - p) * np.log(q / p)))


def ks_2samp(reference: Any, recent: Any) -> tuple[float, float]:
    """Two-sample KS statistic D = sup |F_ref - F_rec| and its asymptotic p-value."""
    a, b = np.sort(_clean(reference)), np.sort(_clean(recent))
    n, m = a.size, b.size
    if n == 0 or m == 0:
        return float("nan"), float("nan")
    grid = np.concatenate([a, b])
    d = float(np.max(np.abs(np.searchsorted(a, grid, side="right") / n - np.searchsorted(b, grid, side="right") / m)))
    en = np.sqrt(n * m / (n + m))
    lam = (en + 0.12 + 0.11 / en) * d  # Stephens' small-sample correction
    if lam < 1e-3:
        return d, 1.0
    j = np.arange(1, 101)
    p = 2.0 * np.sum((-1.0) ** (j - 1) * np.exp(-2.0 * (j * lam) ** 2))
    return d, float(np.clip(p, 0.0, 1.0))


def _level(psi_value: float, ks: float, pvalue: float, th: DriftThresholds) -> Level:
    if not np.isfinite(psi_value):
        return "none"
    significant = np.isfinite(pvalue) and pvalue < th.ks_alpha
    if psi_value >= th.psi_major or (significant and ks >= th.ks_major):
        return "major"
    if psi_value >= th.psi_moderate or (significant and ks >= th.ks_moderate):
        return "moderate"
    return "none"


def feature_drift(name: str, reference: Any, recent: Any, th: DriftThresholds | None = None) -> FeatureDrift:
    th = th or DriftThresholds()
    ref, rec = _clean(reference), _clean(recent)
    value = psi(ref, rec, th.n_bins)
    d, p = ks_2samp(ref, rec)
    level: Level = "none" if min(ref.size, rec.size) < th.min_rows else _level(value, d, p, th)
    return FeatureDrift(name=name, psi=round(value, 6), ks=round(d, 6), ks_pvalue=float(f"{p:.6g}"), level=level,
                        reference_mean=float(ref.mean()) if ref.size else float("nan"),
                        recent_mean=float(rec.mean()) if rec.size else float("nan"),
                        n_reference=int(ref.size), n_recent=int(rec.size))


def compare(
    reference: Mapping[str, Any],
    recent: Mapping[str, Any],
    features: Sequence[str],
    *,
    reference_scores: Any = None,
    recent_scores: Any = None,
    thresholds: DriftThresholds | None = None,
) -> DriftResult:
    """Drift of every feature (and of the scores when given); overall level = worst level."""
    th = thresholds or DriftThresholds()
    notes: list[str] = []
    out: list[FeatureDrift] = []
    for name in features:
        if name not in reference or name not in recent:
            notes.append(f"{name}: missing on one side")
            continue
        out.append(feature_drift(name, reference[name], recent[name], th))
    score = None
    if reference_scores is not None and recent_scores is not None:
        score = feature_drift("score", reference_scores, recent_scores, th)
    n_ref = max((f.n_reference for f in out), default=0)
    n_rec = max((f.n_recent for f in out), default=0)
    if min(n_ref, n_rec) < th.min_rows:
        notes.append(f"too few rows for a verdict ({n_ref} reference, {n_rec} recent; need {th.min_rows})")
    worst = max((LEVELS.index(f.level) for f in [*out, *([score] if score else [])]), default=0)
    out.sort(key=lambda f: (-LEVELS.index(f.level), -f.psi))
    return DriftResult(level=LEVELS[worst], features=out, score=score, n_reference=n_ref, n_recent=n_rec, notes=notes)
