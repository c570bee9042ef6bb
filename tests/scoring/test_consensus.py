from __future__ import annotations

import numpy as np
import pytest

from scoring.consensus import ConsensusConfig, combine
from scoring.features import NUMERIC_FEATURES
from scoring.rules import RuleSet, default_rules


def frame(**cols: list[float]) -> dict[str, np.ndarray]:
    n = len(next(iter(cols.values())))
    out = {name: np.zeros(n) for name in NUMERIC_FEATURES}
    out.update({k: np.asarray(v, dtype=float) for k, v in cols.items()})
    return out


def test_clear_allow_review_block():
    cal = {"robust_z": np.array([0.50, 0.999, 1.0]), "iqr": np.array([0.40, 0.90, 1.0]),
           "isolation_forest": np.array([0.60, 0.95, 1.0])}
    rules = RuleSet(default_rules()).evaluate(frame(cust_count_1h=[1, 1, 9], amount_tenant=[20, 20, 800]))
    res = combine(cal, rules)
    assert res.decisions.tolist() == ["ALLOW", "REVIEW", "BLOCK"]
    assert res.risk[0] == 0.0 and 0.3 <= res.risk[1] < 0.7 and res.risk[2] >= 0.9
    assert res.severities.tolist() == ["low", "medium", "critical"]
    assert res.flagged().tolist() == [1, 2]
    reasons = res.reasons(2)
    contributions = [r["contribution"] for r in reasons]
    assert contributions == sorted(contributions, reverse=True)
    assert {r["detector"] for r in reasons} >= {"rule:velocity_count_1h", "rule:large_amount", "robust_z"}
    assert res.row(0) == {"risk_score": 0.0, "decision": "ALLOW", "severity": "low", "reasons": [],
                          "detectors": {"robust_z": 0.5, "iqr": 0.4, "isolation_forest": 0.6}}


def test_thresholds_are_configurable():
    cal = {"d": np.array([1.0])}
    assert combine(cal).decisions[0] == "REVIEW"  # 0.5 evidence
    cfg = ConsensusConfig(review_threshold=0.1, block_threshold=0.45)
    assert combine(cal, config=cfg).decisions[0] == "BLOCK"
    with pytest.raises(ValueError):
        ConsensusConfig(review_threshold=0.8, block_threshold=0.7)


def test_k_of_n_needs_agreement_before_detectors_alone_flag():
    cal = {"a": np.array([1.0, 1.0]), "b": np.array([0.2, 0.995]), "c": np.array([0.1, 0.2])}
    plain = combine(cal)
    assert plain.decisions.tolist() == ["REVIEW", "REVIEW"]
    k2 = combine(cal, config=ConsensusConfig(k_of_n=2))
    assert k2.decisions.tolist() == ["ALLOW", "REVIEW"]
    assert 0 < k2.risk[0] < 0.3  # ranking information is kept below the review line
    # rules are not subject to the detector vote
    rules = RuleSet(default_rules()).evaluate(frame(cust_count_1h=[9, 1]))
    assert combine(cal, rules, config=ConsensusConfig(k_of_n=3)).decisions[0] == "REVIEW"


def test_action_hint_raises_decision_and_score_together():
    rule = {"name": "blocklisted_country", "score": 0.1, "severity": "critical", "action": "block",
            "condition": {"feature": "country", "op": "in", "value": ["XX"]}}
    fr = {"country": np.array(["XX", "US"], dtype=object)}
    res = combine({}, RuleSet([rule]).evaluate(fr))
    assert res.decisions.tolist() == ["BLOCK", "ALLOW"]
    assert res.risk[0] == pytest.approx(0.7) and res.severities[0] == "critical"


def test_probability_calibrated_detectors_count_their_probability():
    res = combine({"iso": np.array([0.8])}, kinds={"iso": "isotonic"},
                  config=ConsensusConfig(detector_weights={"iso": 1.0}))
    assert res.risk[0] == pytest.approx(0.8) and res.decisions[0] == "BLOCK"
    assert "higher than" in res.reasons(0)[0]["text"]
