from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest

from scoring.detectors import IQRDetector, IsolationForestDetector, RobustZDetector
from scoring.detectors.iforest import export_forest


def frame(values: list[float] | np.ndarray, name: str = "cust_count_1h") -> dict[str, np.ndarray]:
    return {name: np.asarray(values, dtype=float)}


def test_robust_z_on_known_data():
    ref = frame([10, 11, 12, 13, 14, 10, 11, 12, 13, 14])  # median 12, MAD 1 -> SD 1.4826
    det = RobustZDetector(features=("cust_count_1h",)).fit(ref)
    s = det.score(frame([12, 13, 30, 5]))
    assert s.raw[0] == 0.0
    assert s.raw[1] == pytest.approx(1 / 1.4826)
    assert s.raw[2] == pytest.approx(18 / 1.4826)
    assert s.raw[3] == 0.0  # upper side only by default
    assert s.values[2] > 0.999 and s.values[0] == 0.0
    assert s.reasons(1) == []  # under the 3.5 threshold: nothing to explain
    (reason,) = s.reasons(2)
    assert reason.detector == "robust_z" and reason.value == 30.0
    assert reason.threshold == pytest.approx(12 + 3.5 * 1.4826)
    assert "customer transactions in the last hour is 30" in reason.text
    both = RobustZDetector(features=("cust_count_1h",), direction="both").fit(ref).score(frame([5]))
    assert both.raw[0] == pytest.approx(7 / 1.4826)


def test_robust_z_degenerate_counts_use_the_tail_not_a_zero_mad():
    ref = frame([1] * 95 + [2] * 4 + [3])  # MAD is 0
    det = RobustZDetector(features=("cust_count_1h",)).fit(ref)
    s = det.score(frame([2, 9]))
    assert 1.0 < s.raw[0] < 3.5  # seen in ~5 % of the reference: not an outlier
    assert s.raw[1] > 10


def test_robust_z_rare_flags_and_constant_columns_take_their_scale_from_rarity():
    from scipy.stats import norm

    # new_device set in 5 of 1,000 rows: q99 is the median, so neither MAD nor tail says anything
    flag = RobustZDetector(features=("new_device",)).fit(frame([0] * 995 + [1] * 5, "new_device"))
    z = flag.score(frame([0, 1], "new_device")).raw
    assert z[0] == 0.0
    assert z[1] == pytest.approx(norm.isf(5.5 / 1001))  # ~2.5: as surprising as its rarity, not 1000
    assert flag.score(frame([1], "new_device")).reasons(0) == []  # under 3.5 on its own
    # a constant reference: any step of 1 is "never seen in n rows", more surprising as n grows
    small = RobustZDetector(features=("cust_failed_streak",)).fit(frame([0] * 100, "cust_failed_streak"))
    large = RobustZDetector(features=("cust_failed_streak",)).fit(frame([0] * 100_000, "cust_failed_streak"))
    z_small = small.score(frame([1], "cust_failed_streak")).raw[0]
    z_large = large.score(frame([1], "cust_failed_streak")).raw[0]
    assert 2.0 < z_small < z_large < 5.0
    assert large.score(frame([3], "cust_failed_streak")).raw[0] == pytest.approx(3 * z_large)


def test_iqr_on_known_data():
    ref = frame(np.arange(1, 101, dtype=float))  # q1 25.75, q3 75.25, IQR 49.5
    det = IQRDetector(features=("cust_count_1h",)).fit(ref)
    fence = 75.25 + 1.5 * 49.5
    s = det.score(frame([50, fence, fence + 49.5, 1000]))
    assert s.values[1] == pytest.approx(0.5)
    assert s.values[0] < 0.05 and s.values[2] == pytest.approx(1 / (1 + np.exp(-2)))
    assert s.reasons(0) == []
    (reason,) = s.reasons(3)
    assert reason.threshold == pytest.approx(fence) and reason.value == 1000


def _data(n: int = 600, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    x[:, 1] = np.round(np.abs(x[:, 1]) * 2)  # a count-like column with many ties
    x[:5] += 8
    return x


@pytest.mark.parametrize("max_features", [1.0, 0.5])
def test_flat_forest_matches_sklearn_score_samples(max_features):
    x = _data()
    model = IsolationForest(n_estimators=50, max_samples=128, max_features=max_features, random_state=1).fit(x)
    det = IsolationForestDetector(features=("a", "b", "c", "d"))
    det._a = export_forest(model, n_features=4)
    probe = np.vstack([x, _data(200, seed=9), x[:3] + 1e-7])
    # Values on and next to the split thresholds (as float32, what sklearn compares): the walk
    # compares float32 thresholds and must send every one of them the same way.
    t = model.estimators_[0].tree_
    splits = [(f, thr) for f, thr in zip(t.feature, t.threshold, strict=True) if f >= 0][:40]
    cols = model.estimators_features_[0]
    edge = np.repeat(x[:1], 3 * len(splits), axis=0)
    for k, (f, thr) in enumerate(splits):
        t32 = np.float32(thr)
        for j, v in enumerate((t32, np.nextafter(t32, np.float32(-np.inf)), np.nextafter(t32, np.float32(np.inf)))):
            edge[3 * k + j, cols[f]] = v
    probe = np.vstack([probe, edge])
    np.testing.assert_allclose(det.anomaly_score(probe), -model.score_samples(probe), rtol=0, atol=1e-9)


def test_isolation_forest_detector_scores_outliers_high_and_rows_alone_equal_batch():
    x = _data()
    names = ("cust_count_1h", "ip_count_1h", "amount_robust_z", "device_count_1h")
    fr = {n: x[:, j] for j, n in enumerate(names)}
    det = IsolationForestDetector(features=names, n_estimators=60, seed=3).fit(fr)
    s = det.score(fr)
    assert s.values[:5].min() > np.quantile(s.values[5:], 0.95)
    one = det.score({n: fr[n][:1] for n in names})
    assert one.values[0] == s.values[0]
    assert "isolation score" in s.reasons(0)[0].text and s.reasons(0)[0].threshold == 0.5
    again = IsolationForestDetector(features=names, n_estimators=60, seed=3).fit(fr).score(fr)
    np.testing.assert_array_equal(again.values, s.values)  # fixed seed: same model


def test_unfitted_detector_refuses_to_score():
    with pytest.raises(RuntimeError):
        RobustZDetector().score(frame([1]))
    with pytest.raises(RuntimeError):
        IsolationForestDetector().anomaly_score(np.zeros((1, 3)))
