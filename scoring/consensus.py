"""Combine calibrated detector scores and rule hits into risk_score, severity, decision, reasons.

Evidence model (noisy-OR): every piece of evidence e in [0, 1] independently "explains" the
transaction as risky; risk = 1 - prod(1 - e). Rules contribute their score when they fire;
a detector contributes `weight * g(calibrated)`:
- percentile-calibrated detectors: g = 0 below `evidence_start` (the 99th percentile by default:
  a percentile calibration ranks ALL traffic, so only the top 1 % per detector may add risk,
  which keeps the detector-driven review load near what a risk team can handle), rising
  linearly to 1 at the 100th;
- probability-calibrated detectors (isotonic/Platt from labels): g = the probability itself.
The decision comes from the risk (ALLOW < review_threshold <= REVIEW < block_threshold <= BLOCK)
and can only be raised by a fired rule's action hint (the risk is then raised to match, so that
score and decision never disagree). With `k_of_n`, detector evidence alone cannot reach REVIEW
unless at least k detectors vote (calibrated >= vote_threshold); rules are not affected.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scoring.calibration import Calibrator
from scoring.detectors.base import Detector, Frame, Reason, Scores
from scoring.rules.engine import RuleResults, RuleSet

DECISIONS = ("ALLOW", "REVIEW", "BLOCK")
SEVERITIES = ("low", "medium", "high", "critical")
_ACTION_LEVEL = {"allow": 0, "review": 1, "block": 2}


@dataclass(frozen=True, slots=True)
class ConsensusConfig:
    review_threshold: float = 0.3
    block_threshold: float = 0.7
    critical_threshold: float = 0.9
    default_detector_weight: float = 0.5
    detector_weights: Mapping[str, float] = field(default_factory=dict)
    evidence_start: float = 0.99
    vote_threshold: float = 0.99
    k_of_n: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.review_threshold < self.block_threshold <= self.critical_threshold <= 1.0:
            raise ValueError("need 0 < review_threshold < block_threshold <= critical_threshold <= 1")
        if not 0.0 <= self.evidence_start < 1.0:
            raise ValueError("evidence_start must be in [0, 1)")
        if self.k_of_n is not None and self.k_of_n < 1:
            raise ValueError("k_of_n must be >= 1")

    def weight(self, detector: str) -> float:
        return float(self.detector_weights.get(detector, self.default_detector_weight))


class ConsensusResult:
    """Vectorised outcome for n rows; reasons are assembled only for the rows asked about."""

    def __init__(self, risk: np.ndarray, decision: np.ndarray, severity: np.ndarray,
                 calibrated: dict[str, np.ndarray], evidence: dict[str, np.ndarray],
                 scores: dict[str, Scores], rules: RuleResults | None, vote_threshold: float) -> None:
        self.risk = risk
        self.decision_code = decision  # 0 ALLOW, 1 REVIEW, 2 BLOCK
        self.severity_code = severity  # 0 low .. 3 critical
        self.calibrated = calibrated
        self.evidence = evidence
        self.scores = scores
        self.rules = rules
        self.vote_threshold = vote_threshold

    def __len__(self) -> int:
        return len(self.risk)

    @property
    def decisions(self) -> np.ndarray:
        return np.asarray(DECISIONS, dtype=object)[self.decision_code]

    @property
    def severities(self) -> np.ndarray:
        return np.asarray(SEVERITIES, dtype=object)[self.severity_code]

    def flagged(self) -> np.ndarray:
        """Row indices whose decision is REVIEW or BLOCK (the rows that become anomalies)."""
        return np.flatnonzero(self.decision_code > 0)

    def detectors(self, i: int) -> dict[str, float]:
        return {name: float(v[i]) for name, v in self.calibrated.items()}

    def reasons(self, i: int) -> list[dict[str, Any]]:
        """Every reason of row i, largest contribution first."""
        out: list[tuple[float, Reason]] = []
        for name, ev in self.evidence.items():
            e = float(ev[i])
            if e <= 0.0:
                continue
            own = self.scores[name].reasons(i) if name in self.scores else []
            if not own:
                p = float(self.calibrated[name][i])
                own = [Reason(name, f"{name.replace('_', ' ')} score higher than {p * 100:.1f}% of "
                                    "this tenant's recent transactions", p, self.vote_threshold)]
            out += [(e, r) for r in own]
        if self.rules is not None:
            for r, rule in zip(self.rules.reasons(i), (self.rules.rules[j] for j in np.flatnonzero(self.rules.hits[i])),
                               strict=True):
                out.append((rule.score, r))
        out.sort(key=lambda t: -t[0])
        return [{**r.as_dict(), "contribution": round(c, 4)} for c, r in out]

    def row(self, i: int) -> dict[str, Any]:
        """The fraud-check answer for row i."""
        return {"risk_score": float(self.risk[i]), "decision": DECISIONS[int(self.decision_code[i])],
                "severity": SEVERITIES[int(self.severity_code[i])], "reasons": self.reasons(i),
                "detectors": self.detectors(i)}


def combine(
    calibrated: Mapping[str, np.ndarray],
    rules: RuleResults | None = None,
    *,
    config: ConsensusConfig | None = None,
    kinds: Mapping[str, str] | None = None,
    scores: Mapping[str, Scores] | None = None,
) -> ConsensusResult:
    """`calibrated`: detector name -> calibrated values (n,); `kinds`: detector name ->
    'percentile' (default) or a probability calibrator kind ('isotonic', 'platt')."""
    cfg = config or ConsensusConfig()
    kinds = kinds or {}
    n = len(next(iter(calibrated.values()))) if calibrated else (rules.hits.shape[0] if rules else 0)
    evidence: dict[str, np.ndarray] = {}
    keep_det = np.ones(n)
    for name, cal in calibrated.items():
        cal = np.clip(np.asarray(cal, dtype=np.float64), 0.0, 1.0)
        if kinds.get(name, "percentile") == "percentile":
            g = np.clip((cal - cfg.evidence_start) / (1.0 - cfg.evidence_start), 0.0, 1.0)
        else:
            g = cal
        evidence[name] = cfg.weight(name) * g
        keep_det = keep_det * (1.0 - evidence[name])
    det_risk = 1.0 - keep_det
    if cfg.k_of_n is not None and calibrated:
        votes = np.sum([np.asarray(c) >= cfg.vote_threshold for c in calibrated.values()], axis=0)
        cap = np.nextafter(cfg.review_threshold, 0.0)
        det_risk = np.where(votes >= cfg.k_of_n, det_risk, np.minimum(det_risk, cap))
        # Keep the per-detector evidence consistent with the cap, for the reasons' contributions.
        unconfirmed = votes < cfg.k_of_n
        for name in evidence:
            evidence[name] = np.where(unconfirmed, np.minimum(evidence[name], cap), evidence[name])
    keep = 1.0 - det_risk
    hint = np.zeros(n, dtype=np.int64)
    rule_sev = np.zeros(n, dtype=np.int64)
    if rules is not None and rules.rules:
        # cumprod is sequential: same result for a row alone and inside a batch (np.prod may
        # reorder the products with the memory layout).
        keep = keep * np.cumprod(np.ascontiguousarray(1.0 - rules.scores()), axis=1)[:, -1]
        levels = np.array([_ACTION_LEVEL[r.action] for r in rules.rules])
        sev = np.array([SEVERITIES.index(r.severity) for r in rules.rules])
        hint = np.max(np.where(rules.hits, levels, 0), axis=1)
        rule_sev = np.max(np.where(rules.hits, sev, 0), axis=1)
    risk = 1.0 - keep
    # A rule's action hint can only raise the outcome; lift the score with it.
    risk = np.where(hint >= 2, np.maximum(risk, cfg.block_threshold), risk)
    risk = np.where(hint == 1, np.maximum(risk, cfg.review_threshold), risk)
    decision = (risk >= cfg.review_threshold).astype(np.int64) + (risk >= cfg.block_threshold)
    severity = np.select([risk >= cfg.critical_threshold, risk >= cfg.block_threshold,
                          risk >= cfg.review_threshold], [3, 2, 1], 0)
    severity = np.maximum(severity, rule_sev)
    return ConsensusResult(risk, decision, severity, {k: np.asarray(v, dtype=np.float64) for k, v in calibrated.items()},
                           evidence, dict(scores or {}), rules, cfg.vote_threshold)


class ScoringEngine:
    """Detectors -> calibration -> rules -> consensus for one tenant; build once, reuse per batch."""

    def __init__(self, detectors: list[Detector], calibrators: Mapping[str, Calibrator],
                 rules: RuleSet | None = None, config: ConsensusConfig | None = None) -> None:
        missing = [d.name for d in detectors if d.name not in calibrators]
        if missing:
            raise ValueError(f"no calibrator for detectors {missing}")
        self.detectors = list(detectors)
        self.calibrators = dict(calibrators)
        self.rules = rules
        self.config = config or ConsensusConfig()

    def score(self, frame: Frame) -> ConsensusResult:
        rule_results = self.rules.evaluate(frame) if self.rules is not None else None
        return self._combine(frame, rule_results)

    def score_row(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """Single event (fraud-check): same maths, rules through their single-row path."""
        frame = {k: np.asarray([v]) for k, v in row.items()}
        rule_results = self.rules.evaluate_row(row) if self.rules is not None else None
        return self._combine(frame, rule_results).row(0)

    def _combine(self, frame: Frame, rule_results: Any) -> ConsensusResult:
        scores: dict[str, Scores] = {}
        calibrated: dict[str, np.ndarray] = {}
        for det in self.detectors:
            s = det.score(frame)
            scores[det.name] = s
            # Calibrate the RAW score: the 0..1 squashing of some detectors saturates in the tail.
            calibrated[det.name] = self.calibrators[det.name].transform(s.raw)
        kinds = {name: c.kind for name, c in self.calibrators.items()}
        return combine(calibrated, rule_results, config=self.config, kinds=kinds, scores=scores)
