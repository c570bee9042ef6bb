"""The whole pure scoring path: enrichment -> detectors -> calibration -> rules -> consensus."""

from __future__ import annotations

import numpy as np
import pytest

from scoring.consensus import ScoringEngine
from scoring.detectors.training import train_global_model
from scoring.enrich import Enricher, rebuild_state
from scoring.enrich.synthetic import labels, payments
from scoring.rules import RuleSet, default_rules
from tests.scoring.redis_fixture import redis_db_fixture  # noqa: F401  (provides the `rds` fixture)


@pytest.fixture
def engine(rds):
    train = Enricher(rds, "train").enrich(payments(1500, seed=11, hours=24))
    model = train_global_model(train, seed=5, n_estimators=40)
    rds.flushdb()
    return ScoringEngine(model.detectors, model.calibrators, RuleSet(default_rules()))


def test_batch_and_single_event_paths_give_the_same_scores(rds, engine):
    events = payments(250, seed=12, fraud_rate=0.08, hours=4)
    batch = engine.score(Enricher(rds, "acme").enrich(events))
    rds.flushdb()
    en = Enricher(rds, "acme")
    singles = [engine.score_row(en.enrich_one(e)) for e in events]
    np.testing.assert_array_equal(batch.risk, np.array([s["risk_score"] for s in singles]))
    assert batch.decisions.tolist() == [s["decision"] for s in singles]
    for i in batch.flagged()[:10]:
        assert batch.reasons(int(i)) == singles[int(i)]["reasons"]
        assert batch.detectors(int(i)) == singles[int(i)]["detectors"]


def test_rebuilt_state_gives_the_same_scores(rds, engine):
    events = payments(300, seed=13, fraud_rate=0.08, hours=4)
    en = Enricher(rds, "acme")
    en.enrich(events[:200])
    before = engine.score(en.enrich(events[200:])).risk
    rds.flushdb()
    rebuild_state(rds, "acme", events[:200])
    after = engine.score(en.enrich(events[200:])).risk
    np.testing.assert_array_equal(before, after)


def test_injected_fraud_ranks_above_legit_traffic(rds, engine):
    """A smoke check of direction on our own toy data, not an accuracy claim."""
    events = payments(1500, seed=14, fraud_rate=0.03, hours=12)
    res = engine.score(Enricher(rds, "acme").enrich(events))
    y = labels(events)
    assert res.risk[y].mean() > 3 * res.risk[~y].mean()
    assert (res.decision_code[y] > 0).mean() > 0.7


def test_each_default_rule_links_over_the_window_its_entity_features_look_at():
    from scoring.config import RuleThresholds
    from scoring.enrich import EnrichConfig
    from scoring.pipeline import _rule_windows
    from scoring.services import tenant_default_rules

    config = EnrichConfig(short_window_seconds=1_800, long_window_seconds=43_200, return_window_seconds=30 * 86_400)
    windows = {r["name"]: _rule_windows(r["condition"], config) for r in tenant_default_rules(RuleThresholds())}
    assert windows == {
        "velocity_count_1h": {"customer": 1_800}, "velocity_amount_1h": {"customer": 1_800},
        "shared_ip": {"ip": 43_200}, "shared_device": {"device": 43_200},
        "serial_returner": {"customer": 30 * 86_400},
        # amounts, newness: nothing about the entity's other events
        "new_customer_high_amount": {}, "large_amount": {}, "account_takeover": {},
    }
    mixed = {"all": [{"feature": "ip_count_1h", "op": ">", "value": 3},
                     {"not": {"feature": "device_distinct_customers_24h", "op": "<", "value": 2}}]}
    assert _rule_windows(mixed, config) == {"ip": 1_800, "device": 43_200}
