from __future__ import annotations

import numpy as np

from learning.drift import compare, feature_drift, ks_2samp, psi


def frames(seed: int, shift: float = 0.0, n: int = 5000) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "amount": rng.lognormal(3.5 + shift, 0.6, n),
        "count": rng.poisson(1.2 + 2 * shift, n).astype(float),
        "flag": (rng.random(n) < 0.05 + 0.2 * shift).astype(float),
    }


def test_stable_distribution_is_not_drift() -> None:
    r = compare(frames(0), frames(1), ["amount", "count", "flag"], reference_scores=np.random.default_rng(2).random(5000),
                recent_scores=np.random.default_rng(3).random(5000))
    assert r.level == "none", r.as_dict()
    assert all(f.psi < 0.05 for f in r.features)


def test_shifted_distribution_is_drift() -> None:
    r = compare(frames(0), frames(1, shift=0.5), ["amount", "count", "flag"])
    assert r.level == "major"
    assert {f.name for f in r.drifted} == {"amount", "count", "flag"}
    assert r.features[0].level == "major"


def test_score_drift_alone_is_reported() -> None:
    rng = np.random.default_rng(5)
    same = frames(0)
    r = compare(same, frames(1), ["amount"], reference_scores=rng.beta(2, 5, 4000), recent_scores=rng.beta(3, 3, 4000))
    assert r.score is not None and r.score.level != "none" and r.level == r.score.level


def test_small_samples_give_no_verdict() -> None:
    d = feature_drift("x", np.zeros(50), np.ones(50))
    assert d.level == "none"


def test_psi_and_ks_values() -> None:
    rng = np.random.default_rng(7)
    a = rng.normal(0, 1, 20_000)
    assert psi(a, rng.normal(0, 1, 20_000)) < 0.01
    assert psi(a, rng.normal(1, 1, 20_000)) > 0.25
    d, p = ks_2samp(a, rng.normal(0, 1, 20_000))
    assert d < 0.03 and p > 0.01
    d, p = ks_2samp(a, rng.normal(0.5, 1, 20_000))
    assert 0.15 < d < 0.25 and p < 1e-10
    # constant reference: any change in the recent window shows
    assert psi(np.zeros(1000), np.r_[np.zeros(500), np.ones(500)]) > 0.25
