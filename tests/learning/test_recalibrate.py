from __future__ import annotations

import numpy as np
import pytest

from learning.recalibrate import (
    RecalibrationPolicy,
    operating_point,
    recalibrate,
    threshold_for_budget,
    threshold_for_precision,
    threshold_for_recall,
)


def labelled_scores(n: int = 4000, fraud_rate: float = 0.05, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Frauds score higher on average, with overlap: precision rises with the threshold."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < fraud_rate).astype(np.int8)
    s = np.where(y == 1, rng.beta(5, 2, n), rng.beta(2, 5, n))
    return s, y


@pytest.mark.parametrize("target", [0.5, 0.7, 0.9])
def test_precision_target_is_reached_with_most_recall(target: float) -> None:
    s, y = labelled_scores()
    t = threshold_for_precision(s, y, target, min_alerts_labelled=10)
    assert t is not None
    above = s >= t
    assert y[above].mean() >= target
    # every higher supported threshold keeps the target too (running minimum)
    for q in np.quantile(s[above], [0.2, 0.5, 0.8]):
        if (s >= q).sum() >= 10:
            assert y[s >= q].mean() >= target
    # and a clearly lower threshold would break it (the choice is not needlessly high)
    lower = s >= t - 0.05
    assert y[lower].mean() < target or lower.sum() == above.sum()


def test_precision_on_fresh_data_from_same_distribution() -> None:
    s, y = labelled_scores(seed=1)
    t = threshold_for_precision(s, y, 0.8, min_alerts_labelled=20)
    s2, y2 = labelled_scores(n=40_000, seed=2)
    assert y2[s2 >= t].mean() >= 0.7  # generalises (small-sample noise allowed)


def test_unreachable_precision_returns_none() -> None:
    rng = np.random.default_rng(3)
    s = rng.random(1000)
    y = (rng.random(1000) < 0.1).astype(int)  # scores carry no information
    assert threshold_for_precision(s, y, 0.9, min_alerts_labelled=20) is None


def test_recall_target() -> None:
    s, y = labelled_scores()
    t = threshold_for_recall(s, y, 0.8)
    assert t is not None
    recall = y[s >= t].sum() / y.sum()
    assert recall >= 0.8
    assert y[s >= np.nextafter(t, 1)].sum() / y.sum() < 0.8


def test_budget_threshold_gives_the_alert_volume() -> None:
    rng = np.random.default_rng(4)
    scores = rng.random(70_000)  # 10 days of 7,000 events
    t = threshold_for_budget(scores, days=10, alerts_per_day=25)
    assert t is not None
    assert (scores >= t).sum() == 250


def test_budget_with_ties_never_exceeds() -> None:
    scores = np.r_[np.zeros(900), np.full(100, 0.5)]
    t = threshold_for_budget(scores, days=1, alerts_per_day=50)
    assert (scores >= t).sum() <= 50


def test_recalibrate_uses_labels_when_enough() -> None:
    s, y = labelled_scores()
    all_scores = np.r_[s, np.random.default_rng(5).beta(2, 5, 20_000)]
    r = recalibrate(current=0.3, scores=all_scores, days=7, labelled_scores=s, labels=y,
                    policy=RecalibrationPolicy(mode="precision", target=0.8))
    assert r.mode == "precision" and r.changed
    assert r.after.precision is not None and r.after.precision >= 0.8
    assert r.before.precision is not None and r.before.precision < 0.8
    assert r.after.alerts_per_day < r.before.alerts_per_day
    assert r.after.recall is not None and r.before.recall is not None and r.after.recall <= r.before.recall
    assert "precision" in r.reason


def test_recalibrate_falls_back_to_budget_with_few_labels() -> None:
    rng = np.random.default_rng(6)
    scores = rng.random(10_000)
    r = recalibrate(current=0.5, scores=scores, days=5, labelled_scores=np.array([0.9, 0.95, 0.2]),
                    labels=np.array([1, 1, 0]), policy=RecalibrationPolicy(alerts_per_day=20, min_labels=50, max_threshold=1.0))
    assert r.mode == "budget"
    assert r.after.alerts_per_day == pytest.approx(20, abs=0.5)
    assert r.before.alerts_per_day > 900
    assert "labels too few" in r.reason


def test_small_change_is_not_recorded_and_bounds_apply() -> None:
    scores = np.linspace(0, 1, 10_001)
    r = recalibrate(current=0.9, scores=scores, days=1, labelled_scores=np.array([]), labels=np.array([]),
                    policy=RecalibrationPolicy(alerts_per_day=1001, min_change=0.01))
    assert not r.changed and r.details["proposed"] == pytest.approx(0.9, abs=1e-3)
    r = recalibrate(current=0.5, scores=scores, days=1, labelled_scores=np.array([]), labels=np.array([]),
                    policy=RecalibrationPolicy(alerts_per_day=1, max_threshold=0.95))
    assert r.new_threshold == 0.95 and "clamped" in r.reason


def test_operating_point() -> None:
    op = operating_point(0.5, scores=np.array([0.1, 0.6, 0.7, 0.9]), days=2,
                         labelled_scores=np.array([0.6, 0.9, 0.1]), labels=np.array([0, 1, 1]))
    assert op.alerts_per_day == 1.5 and op.precision == 0.5 and op.recall == 0.5 and op.labelled_above == 2


def test_unreachable_target_holds_the_alert_budget_instead_of_silencing_the_detector() -> None:
    rng = np.random.default_rng(8)
    y = (rng.random(2000) < 0.1).astype(np.int8)
    s = np.where(y == 1, rng.beta(3, 2, 2000), rng.beta(2, 3, 2000))  # best precision well below 0.99
    r = recalibrate(current=0.3, scores=s, days=1, labelled_scores=s, labels=y,
                    policy=RecalibrationPolicy(target=0.99, min_alerts_labelled=20, alerts_per_day=300))
    assert r.details["target_unreachable"] and r.mode == "budget" and "alert budget" in r.reason
    assert r.details["best_precision"] < 0.99
    assert r.new_threshold < 0.99 and r.after.alerts_per_day == pytest.approx(300, rel=0.05)
    assert r.after.recall is not None and r.after.recall > 0.3  # the detector still catches fraud
