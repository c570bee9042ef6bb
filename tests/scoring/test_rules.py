from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

from scoring.features import NUMERIC_FEATURES
from scoring.rules import RuleSet, RuleValidationError, compile_rule, default_rules, validate_rule


def row(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {name: 0 for name in NUMERIC_FEATURES}
    base.update({"event_type": "payment", "status": "succeeded", "country": "US", "currency": "USD",
                 "payment_method": "card", "channel": "web", "amount_tenant": 50.0, "cust_count_1h": 1,
                 "ip_distinct_customers_24h": 1, "device_distinct_customers_24h": 1})
    base.update(overrides)
    return base


def as_frame(rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    return {k: np.array([r[k] for r in rows], dtype=object if isinstance(rows[0][k], str) else float)
            for k in rows[0]}


@pytest.mark.parametrize(("rule", "hit", "miss", "value", "threshold"), [
    ("velocity_count_1h", {"cust_count_1h": 6}, {"cust_count_1h": 5}, 6, 5),
    ("velocity_amount_1h", {"cust_amount_1h": 1000.01}, {"cust_amount_1h": 1000.0}, 1000.01, 1000),
    ("new_customer_high_amount", {"is_new_customer": 1, "amount_tenant": 250.0},
     {"is_new_customer": 0, "amount_tenant": 250.0}, 250.0, 200),
    ("shared_ip", {"ip_distinct_customers_24h": 3}, {"ip_distinct_customers_24h": 2}, 3, 3),
    ("shared_device", {"device_distinct_customers_24h": 4}, {"device_distinct_customers_24h": 2}, 4, 3),
    ("large_amount", {"amount_tenant": 501.0}, {"amount_tenant": 500.0}, 501.0, 500),
])
def test_each_default_rule(rule, hit, miss, value, threshold):
    rules = RuleSet(default_rules())
    names = [r.name for r in rules.rules]
    j = names.index(rule)
    rows = [row(**hit), row(**miss)]
    res = rules.evaluate(as_frame(rows))
    assert res.hits[0, j] and not res.hits[1, j]
    assert rules.evaluate_row(rows[0]).hits[0, j] and not rules.evaluate_row(rows[1]).hits[0, j]
    reason = next(r for r in res.reasons(0) if r.detector == f"rule:{rule}")
    assert reason.value == pytest.approx(value) and reason.threshold == pytest.approx(threshold)
    assert str(threshold) in reason.text.replace(",", "")


def test_default_thresholds_are_tenant_configurable():
    rules = RuleSet(default_rules(max_tx_per_hour=10, large_amount=50_000))
    res = rules.evaluate_row(row(cust_count_1h=8, amount_tenant=20_000.0))
    assert not res.hits.any()


def test_nested_conditions_and_text_features_batch_equals_row():
    rule = {"name": "foreign_new_device", "score": 0.6, "severity": "high", "action": "block",
            "condition": {"all": [
                {"any": [{"feature": "new_device", "op": "==", "value": True},
                         {"feature": "cust_distinct_devices_24h", "op": ">=", "value": 3}]},
                {"not": {"feature": "country", "op": "in", "value": ["US", "CA"]}},
                {"feature": "payment_method", "op": "not_in", "value": ["gift_card"]},
                {"feature": "hour_of_week", "op": "<", "value": 168}]}}
    rules = RuleSet([rule])
    rng = np.random.default_rng(0)
    rows = [row(new_device=int(rng.integers(0, 2)), cust_distinct_devices_24h=int(rng.integers(0, 5)),
                country=str(rng.choice(["US", "FR", "CA", "NG"])),
                payment_method=str(rng.choice(["card", "gift_card"]))) for _ in range(200)]
    batch = rules.evaluate(as_frame(rows)).hits[:, 0]
    single = np.array([rules.evaluate_row(r).hits[0, 0] for r in rows])
    np.testing.assert_array_equal(batch, single)
    assert 0 < batch.sum() < len(rows)
    i = int(np.flatnonzero(batch)[0])
    text = rules.evaluate(as_frame(rows)).reasons(i)[0].text
    assert "country" not in text  # conditions under `not` are not presented as causes


def test_disabled_rules_are_skipped():
    rules = default_rules()
    rules[0]["enabled"] = False
    assert "velocity_count_1h" not in [r.name for r in RuleSet(rules).rules]


GOOD = {"name": "r", "score": 0.5, "severity": "low", "action": "review",
        "condition": {"feature": "cust_count_1h", "op": ">", "value": 5}}


def bad(path: list[Any], value: Any) -> dict[str, Any]:
    r = copy.deepcopy(GOOD)
    node: Any = r
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return r


def deep(levels: int) -> dict[str, Any]:
    node: dict[str, Any] = {"feature": "cust_count_1h", "op": ">", "value": 1}
    for _ in range(levels):
        node = {"not": node}
    return node


@pytest.mark.parametrize(("rule", "path", "fragment"), [
    (bad(["condition", "feature"], "__class__"), "rule.condition.feature", "unknown feature"),
    (bad(["condition", "op"], "=~"), "rule.condition.op", "unknown operator"),
    (bad(["condition", "op"], "__import__('os').system('id')"), "rule.condition.op", "unknown operator"),
    (bad(["condition", "value"], "5; import os"), "rule.condition.value", "expected a number"),
    (bad(["condition", "value"], float("nan")), "rule.condition.value", "non-finite"),
    (bad(["condition", "value"], True), "rule.condition.value", "got bool"),
    (bad(["condition"], {"feature": "country", "op": ">", "value": "US"}), "rule.condition.op", "is text"),
    (bad(["condition"], {"feature": "country", "op": "in", "value": ["US", 3]}), "rule.condition.value[1]",
     "expected a string"),
    (bad(["condition"], {"feature": "cust_count_1h", "op": "in", "value": []}), "rule.condition.value",
     "non-empty list"),
    (bad(["condition"], {"all": [GOOD["condition"], {"feature": "x", "op": ">", "value": 1}]}),
     "rule.condition.all[1].feature", "unknown feature"),
    (bad(["condition"], {"all": [], "any": []}), "rule.condition", "exactly one key"),
    (bad(["condition"], {"feature": "cust_count_1h", "op": ">", "value": 1, "code": "x"}), "rule.condition",
     "unknown keys"),
    (bad(["condition"], deep(12)), "rule.condition", "nested too deeply"),
    (bad(["condition"], {"any": [GOOD["condition"]] * 80}), "rule.condition.any", "too large"),
    (bad(["score"], 2), "rule.score", "between 0 and 1"),
    (bad(["severity"], "extreme"), "rule.severity", "one of"),
    (bad(["action"], "delete"), "rule.action", "one of"),
    (bad(["name"], ""), "rule.name", "required"),
    ({**GOOD, "exec": "x"}, "rule", "unknown keys"),
    ("not a rule", "rule", "expected an object"),
])
def test_unsafe_or_malformed_rules_are_rejected_with_a_path(rule, path, fragment):
    with pytest.raises(RuleValidationError) as exc:
        compile_rule(rule)
    messages = [m for p, m in exc.value.errors if p.startswith(path)]
    assert any(fragment in m for m in messages), exc.value.errors


def test_rule_set_reports_every_rule_and_duplicates():
    with pytest.raises(RuleValidationError) as exc:
        RuleSet([GOOD, GOOD, bad(["score"], -1)])
    paths = dict(exc.value.errors)
    assert "rules[1].name" in paths and "rules[2].score" in paths
    assert exc.value.as_dict()["rules[2].score"]


def test_validate_returns_a_normalised_copy():
    ok = validate_rule(GOOD)
    assert ok["enabled"] is True and ok["description"] == ""
