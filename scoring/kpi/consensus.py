"""Consensus of KPI detectors: confirm an anomaly when enough of them agree, then grade it.

Votes: a detector votes when its score reaches `cut` (0.5 = its own threshold). Abstaining detectors
(NaN: no model yet, not enough history) are not counted, so `k` is taken among the available ones:
- mode "pairwise": at least 2 votes; "all": every available detector; an int: that many votes.
- when fewer detectors are available than required (e.g. a new series where only the rolling z-score
  can judge), the lone votes must reach the stricter `solo_cut`, rather than silence or a free pass.
- decisive evidence: a detector named in `decisive` (the primary, which models the series' own noise)
  whose score reaches `decisive_cut` (default 2/3: its statistic at twice its threshold) confirms alone
  in "pairwise" mode, where the caller allows it (`decisive_ok`). A forecast fitted on a thin or short history often abstains or lags a collapse
  (a campaign's CTR at ~0 for hours); a 2x-threshold primary statistic does not need its vote. An
  explicit k or "all" is the user's choice and is never relaxed.

Combined score = mean of the k highest available scores (so confirmed implies >= cut). Expected value =
median of the voting detectors' expectations. Severity grows with how far past its threshold the
combined score is, and is raised for large relative moves (a 90 % collapse is critical whatever the
noise level). Impact = observed - expected, in money, for money metrics.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from scoring.kpi.base import KpiScores, Reason
from scoring.kpi.series import row_median

SEVERITIES = ("low", "medium", "high", "critical")


@dataclass(frozen=True)
class ConsensusConfig:
    mode: str | int = "pairwise"
    cut: float = 0.5
    solo_cut: float = 0.75
    # severity from the combined score's multiple of threshold r = s / (1 - s): 1x low, 2x medium, ...
    severity_multiples: tuple[float, float, float] = (2.0, 4.0, 8.0)
    high_relative_change: float = 0.5
    critical_drop: float = 0.9
    decisive: tuple[str, ...] = ()
    decisive_cut: float = 2.0 / 3.0

    def required(self, available: np.ndarray) -> np.ndarray:
        if self.mode == "all":
            return np.maximum(available, 1)
        k = 2 if self.mode == "pairwise" else int(self.mode)
        return np.full(available.shape, k)


@dataclass
class ConsensusResult:
    confirmed: np.ndarray
    score: np.ndarray
    votes: np.ndarray
    available: np.ndarray
    observed: np.ndarray
    expected: np.ndarray
    direction: np.ndarray
    severity: np.ndarray  # object array of 'low'..'critical', '' when not confirmed
    relative_change: np.ndarray
    impact: np.ndarray  # observed - expected for money metrics, NaN otherwise
    detectors: dict[str, KpiScores] = field(default_factory=dict)

    def detector_scores(self, i: int) -> dict[str, float]:
        return {name: float(s.score[i]) for name, s in self.detectors.items() if np.isfinite(s.score[i])}

    def reasons(self, i: int, cut: float = 0.5) -> list[Reason]:
        out: list[Reason] = []
        for s in self.detectors.values():
            if np.isfinite(s.score[i]) and s.score[i] >= cut:
                out += s.reasons(i)
        return out


def combine(scores: Mapping[str, KpiScores], config: ConsensusConfig | None = None, *,
            kind: str = "gauge", decisive_ok: np.ndarray | None = None) -> ConsensusResult:
    """Vectorised consensus over aligned detector outputs (same points / series in the same order).

    `decisive_ok` (bool per point, default all) says where the decisive rule may apply: the caller
    knows when a statistic is trustworthy alone (an exact sampling model, evidence pooled over a run)
    and when it is not (one bucket of a heavy-tailed money series: a single large order)."""
    cfg = config or ConsensusConfig()
    names = list(scores)
    S = np.vstack([scores[n].score for n in names])  # detectors x points
    E = np.vstack([scores[n].expected for n in names])
    observed = next(iter(scores.values())).observed
    avail_mask = np.isfinite(S)
    available = avail_mask.sum(axis=0)
    S0 = np.where(avail_mask, S, -np.inf)
    votes = (S0 >= cfg.cut).sum(axis=0)
    need = cfg.required(available)
    full = available >= need
    solo_votes = (S0 >= cfg.solo_cut).sum(axis=0)
    confirmed = np.where(full, votes >= need, (available > 0) & (solo_votes >= np.maximum(available, 1)))
    decisive = np.zeros(confirmed.shape, bool)
    decisive_score = np.full(confirmed.shape, -np.inf)
    if cfg.mode == "pairwise":
        for i, name in enumerate(names):
            if name in cfg.decisive:
                hit = (S0[i] >= cfg.decisive_cut) & (True if decisive_ok is None else decisive_ok)
                decisive |= hit
                decisive_score = np.where(hit, np.fmax(decisive_score, S0[i]), decisive_score)
    lone = decisive & ~confirmed
    confirmed = confirmed | decisive
    # combined: mean of the k highest available scores
    k = np.clip(np.minimum(need, available), 1, None)
    ranked = -np.sort(-S0, axis=0)
    pos = np.arange(len(names))[:, None]
    take = (pos < k[None, :]) & np.isfinite(ranked)
    with np.errstate(invalid="ignore"):
        combined = np.where(available > 0, np.where(take, ranked, 0).sum(axis=0) / k, np.nan)
    # confirmed by a decisive detector alone: its own score, not a mean with the abstaining/silent ones
    combined = np.where(lone, np.fmax(combined, decisive_score), combined)
    voting = avail_mask & (S0 >= cfg.cut) & np.isfinite(E)
    use = np.where(voting.any(axis=0)[None, :], voting, avail_mask & np.isfinite(E))
    expected = row_median(np.where(use, E, np.nan).T)
    with np.errstate(invalid="ignore", divide="ignore"):
        delta = observed - expected
        rel = np.where(np.abs(expected) > 0, delta / np.abs(expected), np.where(delta != 0, np.inf, 0.0))
    direction = np.sign(np.nan_to_num(delta)).astype(np.int8)
    severity = _severity(combined, rel, confirmed, cfg)
    impact = delta if kind == "money" else np.full(delta.shape, np.nan)
    return ConsensusResult(confirmed, combined, votes, available, observed, expected, direction, severity, rel,
                           impact, dict(scores))


def _severity(score: np.ndarray, rel: np.ndarray, confirmed: np.ndarray, cfg: ConsensusConfig) -> np.ndarray:
    s = np.clip(np.nan_to_num(score), 0, 0.999999)
    r = s / (1 - s)  # detectors score r / (1 + r), r = statistic / threshold
    level = np.zeros(s.shape, dtype=np.int64)
    for i, m in enumerate(cfg.severity_multiples, start=1):
        level = np.where(r >= m, i, level)
    rel = np.nan_to_num(rel, nan=0.0, posinf=10.0, neginf=-10.0)
    level = np.where(np.abs(rel) >= cfg.high_relative_change, np.maximum(level, 2), level)
    level = np.where(rel <= -cfg.critical_drop, 3, level)
    out = np.array(SEVERITIES, dtype=object)[level]
    return np.where(confirmed, out, "")
