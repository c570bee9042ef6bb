from __future__ import annotations

import numpy as np

from scoring.kpi.base import KpiScores
from scoring.kpi.consensus import ConsensusConfig, combine
from scoring.kpi.noise import KnownEvent, NoiseConfig, apply_noise_control
from tests.scoring.kpi.helpers import hourly


def _scores(name: str, score: list[float], expected: float = 100.0, observed: list[float] | None = None) -> KpiScores:
    n = len(score)
    obs = np.array(observed if observed is not None else [50.0] * n)
    e = np.full(n, expected)
    return KpiScores(name, obs, np.array(score, dtype=float), e, e - 10, e + 10, np.zeros(n), 1.0)


def test_pairwise_all_and_abstain():
    a = _scores("a", [0.6, 0.6, 0.2, 0.8, np.nan])
    b = _scores("b", [0.7, 0.3, 0.3, np.nan, np.nan])
    c = _scores("c", [0.1, 0.55, 0.1, np.nan, 0.9])
    pair = combine({"a": a, "b": b, "c": c})
    assert pair.confirmed.tolist() == [True, True, False, True, True]  # last two: lone detector >= solo_cut
    assert pair.votes.tolist() == [2, 2, 0, 1, 1]
    every = combine({"a": a, "b": b, "c": c}, ConsensusConfig(mode="all"))
    assert every.confirmed.tolist() == [False, False, False, True, True]
    assert np.all(pair.score[pair.confirmed] >= 0.5)


def test_expected_direction_severity_impact():
    a = _scores("a", [0.6, 0.95], observed=[80.0, 5.0])
    b = _scores("b", [0.6, 0.95], observed=[80.0, 5.0])
    money = combine({"a": a, "b": b}, kind="money")
    assert money.direction.tolist() == [-1, -1]
    np.testing.assert_allclose(money.impact, [-20.0, -95.0])
    assert money.severity.tolist() == ["low", "critical"]
    counts = combine({"a": a, "b": b}, kind="count")
    assert np.isnan(counts.impact).all()
    assert counts.reasons(1)[0].detector == "a"


def test_direction_min_change_duration_and_calendar():
    t = hourly(12)
    confirmed = np.array([0, 1, 1, 1, 0, 1, 0, 1, 1, 0, 1, 1], dtype=bool)
    direction = np.array([0, -1, -1, -1, 0, 1, 0, -1, -1, 0, -1, -1])
    rel = np.array([0, -0.5, -0.5, -0.5, 0, 0.4, 0, -0.05, -0.5, 0, -0.5, -0.5])
    inc = apply_noise_control(t, confirmed, direction, rel, NoiseConfig())
    assert [(i.start_index, i.buckets) for i in inc] == [(1, 3), (5, 1), (7, 2), (10, 2)]
    down = apply_noise_control(t, confirmed, direction, rel, NoiseConfig(direction="down", min_duration=2))
    assert [(i.start_index, i.detected_index) for i in down] == [(1, 2), (7, 8), (10, 11)]
    assert down[0].occurred_at == t[1] and down[0].detected_at == t[2]
    big = apply_noise_control(t, confirmed, direction, rel, NoiseConfig(min_relative_change=0.2, min_duration=2))
    assert [i.start_index for i in big] == [1, 10]  # bucket 7 is too small, so 8 alone is too short
    cal = NoiseConfig(calendar=[KnownEvent(t[0], t[4], "flash sale", "mute"),
                                KnownEvent(t[10], t[11] + np.timedelta64(1, "h"), "holiday", "mark")])
    out = apply_noise_control(t, confirmed, direction, rel, cal)
    assert [i.start_index for i in out] == [5, 7, 10]
    assert out[-1].events == ["holiday"] and out[0].events == []
