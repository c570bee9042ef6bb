"""Threshold recalibration from labels (target precision or recall) or, without enough labels, from
the score distribution (an alert budget in alerts per day). Pure NumPy, no Django.

Inputs are two views of the same period:
- `scores`: the score of EVERY scored event in the window (flagged or not), so that alert volumes
  and the effect of lowering a threshold can be read off the distribution;
- `labelled_scores` / `labels`: the scores of the events that have a label (1 = fraud / true
  positive, 0 = legit / false positive), e.g. analyst feedback on anomalies and chargeback files.

Precision is estimated on labelled events above the threshold. Labels are biased toward flagged
events (analysts only see what was flagged), so precision below the current threshold is only as
good as the bulk labels (chargebacks) that reach there; the minimum-label rule requires enough
labels on both classes before a label-driven threshold is trusted, and `min_alerts_labelled`
requires enough labelled events ABOVE a candidate threshold so that one lucky label cannot move it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

Mode = Literal["precision", "recall", "budget"]


@dataclass(frozen=True, slots=True)
class OperatingPoint:
    """What a threshold is expected to give: alerts per day from the score distribution, precision
    and recall from the labels (None when the labels cannot say)."""

    threshold: float
    alerts_per_day: float
    precision: float | None
    recall: float | None
    labelled_above: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class RecalibrationPolicy:
    mode: Literal["precision", "recall"] = "precision"
    target: float = 0.8
    # Minimum-label rule: below these counts the labels are not trusted and the budget applies.
    min_labels: int = 50
    min_positives: int = 10
    min_negatives: int = 10
    min_alerts_labelled: int = 10
    alerts_per_day: float = 50.0
    # Bounds keep a recalibration from switching alerts off or flooding the team.
    min_threshold: float = 0.05
    max_threshold: float = 0.99
    # Smaller moves are not worth a recorded change (avoids churn on every beat).
    min_change: float = 0.005

    def __post_init__(self) -> None:
        if not 0.0 < self.target <= 1.0:
            raise ValueError("target must be in (0, 1]")
        if not 0.0 <= self.min_threshold < self.max_threshold <= 1.0:
            raise ValueError("need 0 <= min_threshold < max_threshold <= 1")
        if self.alerts_per_day <= 0:
            raise ValueError("alerts_per_day must be positive")


@dataclass(frozen=True, slots=True)
class Recalibration:
    old_threshold: float
    new_threshold: float
    mode: Mode
    reason: str
    before: OperatingPoint
    after: OperatingPoint
    n_labels: int
    n_positives: int
    n_scores: int
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return self.new_threshold != self.old_threshold

    def as_dict(self) -> dict[str, Any]:
        return {"old_threshold": self.old_threshold, "new_threshold": self.new_threshold, "mode": self.mode,
                "reason": self.reason, "before": self.before.as_dict(), "after": self.after.as_dict(),
                "n_labels": self.n_labels, "n_positives": self.n_positives, "n_scores": self.n_scores,
                "details": self.details}


def _as_arrays(labelled_scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(labelled_scores, dtype=np.float64)
    y = np.asarray(labels).astype(np.int8)
    if s.shape != y.shape:
        raise ValueError("labelled_scores and labels must have the same length")
    keep = np.isfinite(s)
    return s[keep], y[keep]


def operating_point(threshold: float, *, scores: np.ndarray, days: float, labelled_scores: np.ndarray,
                    labels: np.ndarray, min_alerts_labelled: int = 1) -> OperatingPoint:
    """Expected alerts/day, precision and recall when alerting on score >= threshold."""
    s = np.asarray(scores, dtype=np.float64)
    ls, y = _as_arrays(labelled_scores, labels)
    above = ls >= threshold
    n_above = int(above.sum())
    n_pos = int(y.sum())
    precision = float(y[above].mean()) if n_above >= max(min_alerts_labelled, 1) else None
    recall = float(y[above].sum() / n_pos) if n_pos else None
    return OperatingPoint(threshold=float(threshold), alerts_per_day=float((s >= threshold).sum() / max(days, 1e-9)),
                          precision=precision, recall=recall, labelled_above=n_above)


def threshold_for_precision(labelled_scores: np.ndarray, labels: np.ndarray, target: float,
                            *, min_alerts_labelled: int = 10) -> float | None:
    """The LOWEST threshold (most recall) whose labelled precision is >= target and stays >= target
    for every higher threshold with enough support: a dip just below a lucky cluster of frauds must
    not be taken as the operating point. None when no threshold reaches the target."""
    s, y = _as_arrays(labelled_scores, labels)
    if s.size == 0:
        return None
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    # Candidate cut after position k (alert on the top k+1); only the last of a run of ties can
    # be a cut, since a threshold cannot split equal scores.
    tp = np.cumsum(y_sorted)
    k = np.arange(1, s.size + 1)
    precision = tp / k
    is_cut = np.r_[s_sorted[1:] < s_sorted[:-1], True]
    supported = k >= min_alerts_labelled
    valid = is_cut & supported
    if not valid.any():
        return None
    # Running minimum from the top over supported cuts: the precision of every higher threshold.
    prec_valid = np.where(valid, precision, np.inf)
    run_min = np.minimum.accumulate(prec_valid)
    ok = valid & (run_min >= target)
    if not ok.any():
        return None
    last = int(np.flatnonzero(ok)[-1])
    return float(s_sorted[last])


def best_precision_threshold(labelled_scores: np.ndarray, labels: np.ndarray, *,
                             min_alerts_labelled: int = 10) -> tuple[float | None, float]:
    """(threshold, precision) of the most precise cut with at least `min_alerts_labelled` labelled
    events above it; the lowest such threshold on ties (more recall for the same precision)."""
    s, y = _as_arrays(labelled_scores, labels)
    if s.size == 0:
        return None, 0.0
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    k = np.arange(1, s.size + 1)
    precision = np.cumsum(y_sorted) / k
    valid = np.r_[s_sorted[1:] < s_sorted[:-1], True] & (k >= min_alerts_labelled)
    if not valid.any():
        return None, 0.0
    p = np.where(valid, precision, -1.0)
    best = float(p.max())
    last = int(np.flatnonzero(p == best)[-1])
    return float(s_sorted[last]), best


def threshold_for_recall(labelled_scores: np.ndarray, labels: np.ndarray, target: float) -> float | None:
    """The HIGHEST threshold (fewest alerts) that still catches `target` of the labelled frauds."""
    s, y = _as_arrays(labelled_scores, labels)
    pos = np.sort(s[y == 1])[::-1]
    if pos.size == 0:
        return None
    need = int(np.ceil(target * pos.size))
    return float(pos[max(need, 1) - 1])


def threshold_for_budget(scores: np.ndarray, days: float, alerts_per_day: float) -> float | None:
    """The threshold that yields about `alerts_per_day` alerts on this score distribution: the
    score of the (budget+1)-th highest event, nudged up so that it is excluded (ties stay out)."""
    s = np.asarray(scores, dtype=np.float64)
    s = s[np.isfinite(s)]
    if s.size == 0 or days <= 0:
        return None
    k = int(np.floor(alerts_per_day * days))
    if k >= s.size:
        return float(s.min())
    top = np.partition(s, s.size - k - 1)[s.size - k - 1]  # (k+1)-th largest
    return float(np.nextafter(top, np.inf))


def recalibrate(
    *,
    current: float,
    scores: np.ndarray,
    days: float,
    labelled_scores: np.ndarray,
    labels: np.ndarray,
    policy: RecalibrationPolicy | None = None,
) -> Recalibration:
    """Propose a new threshold for one detector/metric and say what it is expected to change."""
    pol = policy or RecalibrationPolicy()
    s = np.asarray(scores, dtype=np.float64)
    ls, y = _as_arrays(labelled_scores, labels)
    n_pos, n_lab = int(y.sum()), int(y.size)
    enough = n_lab >= pol.min_labels and n_pos >= pol.min_positives and n_lab - n_pos >= pol.min_negatives
    mode: Mode
    new: float | None = None
    details: dict[str, Any] = {}
    if enough:
        mode = pol.mode
        if pol.mode == "precision":
            new = threshold_for_precision(ls, y, pol.target, min_alerts_labelled=pol.min_alerts_labelled)
            reason = (f"lowest threshold keeping precision >= {pol.target:.0%} on {n_lab} labels "
                      f"({n_pos} fraud)")
            if new is None:
                # No threshold reaches the target. Jumping to the most precise cut would trade away
                # most of the recall (a fraud team rarely wants that); the honest fallback is the alert
                # budget the team said it can handle, with the best reachable precision on record.
                _, best = best_precision_threshold(ls, y, min_alerts_labelled=pol.min_alerts_labelled)
                mode = "budget"
                new = threshold_for_budget(s, days, pol.alerts_per_day)
                reason = (f"no threshold reaches precision {pol.target:.0%} on {n_lab} labels ({n_pos} fraud; "
                          f"best reachable {best:.0%}): holding the alert budget of {pol.alerts_per_day:g}/day"
                          if best is not None else
                          f"no threshold reaches precision {pol.target:.0%} on {n_lab} labels: holding the alert "
                          f"budget of {pol.alerts_per_day:g}/day")
                details["target_unreachable"] = True
                details["best_precision"] = best
        else:
            new = threshold_for_recall(ls, y, pol.target)
            reason = f"highest threshold keeping recall >= {pol.target:.0%} of {n_pos} labelled frauds"
    else:
        mode = "budget"
        new = threshold_for_budget(s, days, pol.alerts_per_day)
        reason = (f"alert budget {pol.alerts_per_day:g}/day over {s.size} scores in {days:g} days "
                  f"(labels too few: {n_lab} < {pol.min_labels} or {n_pos} fraud < {pol.min_positives} "
                  f"or {n_lab - n_pos} legit < {pol.min_negatives})")
        details["labels_short"] = True
    if new is None:
        new = current
        reason = "no scores to calibrate on: threshold kept"
    clamped = float(np.clip(new, pol.min_threshold, pol.max_threshold))
    if clamped != new:
        details["clamped_from"] = new
        reason += f" (clamped to [{pol.min_threshold}, {pol.max_threshold}])"
    if abs(clamped - current) < pol.min_change:
        details["proposed"] = clamped
        clamped = current
        reason += f"; change below {pol.min_change}: kept"
    def point(t: float) -> OperatingPoint:
        return operating_point(t, scores=s, days=days, labelled_scores=ls, labels=y, min_alerts_labelled=1)

    return Recalibration(
        old_threshold=float(current), new_threshold=float(clamped), mode=mode, reason=reason,
        before=point(current), after=point(clamped),
        n_labels=n_lab, n_positives=n_pos, n_scores=int(s.size), details=details,
    )
