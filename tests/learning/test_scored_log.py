"""The scored-event log written by the scoring path (COPY) stores exactly what the ORM would have:
features bit-for-bit, detector scores rounded to 6 places, context, decision, naive and aware times."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import numpy as np

from learning import services
from learning.log import CONTEXT_COLUMNS, LOG_FEATURES, array_literals
from learning.models import ScoredEvent


def test_scored_events_record_stores_exact_values(tenant) -> None:
    rng = np.random.default_rng(3)
    n = 5
    frame = {name: rng.normal(size=n) * 10.0 ** rng.integers(-8, 8, n) for name in LOG_FEATURES}
    frame[LOG_FEATURES[0]][0] = np.nan  # logged as 0.0
    frame.update({c: np.array([f"{c}\t{i}\\x" for i in range(n)], dtype=object) for c in CONTEXT_COLUMNS})
    events = [{"event_id": f"log-{i}", "occurred_at": datetime(2026, 11, 20, 10, i, tzinfo=UTC)} for i in range(n - 1)]
    events.append({"event_id": "log-naive", "timestamp": datetime(2026, 11, 20, 11, 0)})  # read as UTC
    cal = {"iforest": rng.random(n), "robust_z": np.array([0.1234565, 1 / 3, 0.0, 1.0, 2 / 3])}
    scored = SimpleNamespace(events=events, frame=frame, scorer=SimpleNamespace(model_version=7),
                             result=SimpleNamespace(risk=rng.random(n), decisions=["ALLOW", "REVIEW", "BLOCK",
                                                                                      "ALLOW", "REVIEW"],
                                                    calibrated=cal))
    assert services.scored_events_record(scored=scored) == n
    rows = list(ScoredEvent.objects.filter(event_id__startswith="log-").order_by("id"))
    assert [r.event_id for r in rows] == [e["event_id"] for e in events]
    for i, r in enumerate(rows):
        expected = [0.0 if np.isnan(frame[f][i]) else float(frame[f][i]) for f in LOG_FEATURES]
        assert r.features == expected  # exact float round trip
        assert r.detectors == {k: round(float(v[i]), 6) for k, v in cal.items()}
        assert r.context == {c: str(frame[c][i]) for c in CONTEXT_COLUMNS}
        assert r.risk == float(scored.result.risk[i]) and r.model_version == 7
        assert r.decision == scored.result.decisions[i]
    assert rows[0].occurred_at == events[0]["occurred_at"]
    assert rows[-1].occurred_at == datetime(2026, 11, 20, 11, 0, tzinfo=UTC)


def test_whole_number_features_are_stored_exactly_by_copy(tenant) -> None:
    n = 20  # above the one-INSERT size: the COPY path
    rng = np.random.default_rng(4)
    frame = {name: rng.integers(-5, 50, n).astype(float) for name in LOG_FEATURES}
    frame[LOG_FEATURES[1]] = np.full(n, 2.0**53 + 2)  # whole but too large for an exact int64 path
    frame[LOG_FEATURES[2]][3] = 0.5  # one fraction: that column is written as floats
    frame.update({c: np.array(["x"] * n, dtype=object) for c in CONTEXT_COLUMNS})
    events = [{"event_id": f"whole-{i}", "occurred_at": datetime(2026, 11, 20, 10, i, tzinfo=UTC)} for i in range(n)]
    scored = SimpleNamespace(events=events, frame=frame, scorer=SimpleNamespace(model_version=1),
                             result=SimpleNamespace(risk=np.zeros(n), decisions=["ALLOW"] * n, calibrated={}))
    assert services.scored_events_record(scored=scored) == n
    rows = list(ScoredEvent.objects.filter(event_id__startswith="whole-").order_by("id"))
    for i, r in enumerate(rows):
        assert r.features == [float(frame[f][i]) for f in LOG_FEATURES]


def test_array_literals_write_whole_columns_as_integers() -> None:
    x = np.array([[1.0, 2.5, 3.0], [-4.0, 0.1, 2.0**60]])
    assert array_literals(x) == ["{1,2.5,3.0}", "{-4,0.1,1.152921504606847e+18}"]
    assert array_literals(np.zeros((0, 3))) == []
