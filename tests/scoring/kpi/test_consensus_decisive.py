"""The decisive rule of KPI consensus: a primary statistic at twice its threshold confirms alone."""

from __future__ import annotations

import numpy as np

from scoring.kpi.base import KpiScores
from scoring.kpi.consensus import ConsensusConfig, combine


def _scores(name: str, score: list[float]) -> KpiScores:
    n = len(score)
    e = np.full(n, 100.0)
    return KpiScores(name, np.full(n, 5.0), np.array(score, dtype=float), e, e - 10, e + 10, np.zeros(n), 1.0)


def test_decisive_primary_confirms_alone_only_where_allowed_and_in_pairwise_mode() -> None:
    primary = _scores("seasonal_z", [0.7, 0.6, 0.7, 0.7])
    forecast = _scores("prophet", [0.1, 0.1, np.nan, 0.1])
    scores = {"seasonal_z": primary, "prophet": forecast}
    plain = combine(scores)
    assert plain.confirmed.tolist() == [False, False, False, False]  # the forecast disagrees or abstains (< solo)
    cfg = ConsensusConfig(decisive=("seasonal_z",))
    res = combine(scores, cfg, decisive_ok=np.array([True, True, True, False]))
    # 0.7 >= 2/3 (2x threshold) confirms alone; 0.6 does not; not where the caller forbids it
    assert res.confirmed.tolist() == [True, False, True, False]
    assert res.score[0] == 0.7 and res.severity[0] != "" and res.direction[0] == -1
    strict = combine(scores, ConsensusConfig(mode=2, decisive=("seasonal_z",)))
    assert not strict.confirmed.any()  # an explicit k is never relaxed
