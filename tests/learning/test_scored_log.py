"""The scored-event log written by the scoring path (one INSERT for a few rows, binary COPY for more)
stores exactly what the ORM would have: features bit-for-bit, detector scores rounded to 6 places,
context, decision, naive and aware times."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import SimpleNamespace

import numpy as np
import pytest

from learning import services
from learning.log import CONTEXT_COLUMNS, LOG_FEATURES, context_json
from learning.models import ScoredEvent


@pytest.mark.parametrize("n", [5, 30])  # one INSERT; binary COPY
def test_scored_events_record_stores_exact_values(tenant, n) -> None:
    rng = np.random.default_rng(3)
    frame = {name: rng.normal(size=n) * 10.0 ** rng.integers(-8, 8, n) for name in LOG_FEATURES}
    frame[LOG_FEATURES[0]][0] = np.nan  # logged as 0.0
    frame.update({c: np.array([f"{c}\t{i}\\x" for i in range(n)], dtype=object) for c in CONTEXT_COLUMNS})
    events = [{"event_id": f"log-{i}", "occurred_at": datetime(2026, 11, 20, 10, i, tzinfo=UTC)} for i in range(n - 1)]
    events.append({"event_id": "log-naive", "timestamp": datetime(2026, 11, 20, 11, 0)})  # read as UTC
    cal = {"iforest": rng.random(n), "robust_z": np.resize([0.1234565, 1 / 3, 0.0, 1.0, 2 / 3], n)}
    scored = SimpleNamespace(events=events, frame=frame, scorer=SimpleNamespace(model_version=7),
                             result=SimpleNamespace(risk=rng.random(n), calibrated=cal,
                                                    decisions=np.resize(["ALLOW", "REVIEW", "BLOCK"], n)))
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
        assert abs((r.created_at - datetime.now(UTC)).total_seconds()) < 60
    assert rows[0].occurred_at == events[0]["occurred_at"]
    assert rows[-1].occurred_at == datetime(2026, 11, 20, 11, 0, tzinfo=UTC)


def test_whole_number_features_are_stored_exactly_by_copy(tenant) -> None:
    n = 20  # above the one-INSERT size: the COPY path (integers and fractions alike are binary doubles)
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


def test_context_json_is_what_json_dumps_writes() -> None:
    events = [{"store_id": "s1", "channel": None}, {"store_id": 'q"\\', "channel": "web"}, {"store_id": "s1"}]
    frame = {"country": np.array(["FR", "é", "FR"], dtype=object)}
    expected = [json.dumps({c: "" if (v := (frame[c][i] if c in frame else e.get(c))) is None else str(v)
                            for c in CONTEXT_COLUMNS}) for i, e in enumerate(events)]
    assert context_json(events, frame) == expected
