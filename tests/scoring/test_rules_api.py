"""/api/v1/rules: defaults on first use, validation at save time, versions, dry-run."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.scoring.fraud_helpers import ingest_and_consume, payment, recent

RULE = {"name": "big_basket_fr", "description": "large basket from France", "score": 0.4, "severity": "medium",
        "action": "review", "condition": {"all": [{"feature": "amount_tenant", "op": ">", "value": 250},
                                                  {"feature": "country", "op": "in", "value": ["FR"]}]}}


@pytest.fixture(autouse=True)
def _clean_redis(redis_client):  # type: ignore[no-untyped-def]
    yield
    redis_client.flushdb()


def test_the_default_rule_set_is_created_on_first_use(tenant_a):
    response = tenant_a.client("read").get("/api/v1/rules")
    assert response.status_code == 200
    names = {r["name"] for r in response.json()["results"]}
    assert names == {"velocity_count_1h", "velocity_amount_1h", "new_customer_high_amount", "shared_ip",
                     "shared_device", "large_amount", "account_takeover", "serial_returner"}
    assert all(r["version"] == 1 for r in response.json()["results"])


def test_default_thresholds_come_from_the_tenant_config(tenant_a):
    tenant = tenant_a.tenant
    tenant.config = {"scoring": {"rules": {"large_amount": 2000}}}
    tenant.save(update_fields=["config"])
    rules = {r["name"]: r for r in tenant_a.client("read").get("/api/v1/rules").json()["results"]}
    assert rules["large_amount"]["condition"]["all"][0]["value"] == 2000


def test_tenant_default_rules_adapt_amounts_to_the_shop_and_catch_takeovers():
    from scoring.config import RuleThresholds
    from scoring.features import FEATURE_NAMES
    from scoring.rules import RuleSet
    from scoring.services import tenant_default_rules

    rules = RuleSet(tenant_default_rules(RuleThresholds()))
    base = {name: 0 for name in FEATURE_NAMES} | {"event_type": "payment", "status": "", "country": "FR",
                                                   "currency": "EUR", "payment_method": "", "channel": ""}

    def fired(**features):  # type: ignore[no-untyped-def]
        hits = rules.evaluate_row(base | features).hits[0]
        return {r.name for r, hit in zip(rules.rules, hits, strict=True) if hit}

    # 300 from a new customer in a shop where that is an ordinary basket: nothing.
    assert fired(is_new_customer=1, amount_tenant=300, amount_robust_z=0.8, amount_new_customer_percentile=0.9) == set()
    # The same amount far above what this shop usually sees: both amount rules.
    assert fired(is_new_customer=1, amount_tenant=700, amount_robust_z=2.5,
                 amount_new_customer_percentile=0.999) == {"new_customer_high_amount", "large_amount"}
    # Over the brief's 200 and in the top 0.2 % of the shop's new-customer purchases: the new-customer rule.
    assert fired(is_new_customer=1, amount_tenant=350, amount_new_customer_percentile=0.9985) == {
        "new_customer_high_amount"}
    # Top 1 % but not top 0.2 %; or a known customer: not the new-customer rule.
    assert fired(is_new_customer=1, amount_tenant=350, amount_new_customer_percentile=0.99) == set()
    assert fired(is_new_customer=0, amount_tenant=350, amount_new_customer_percentile=0.9999) == set()
    # Top 0.2 % of a shop where that is under the brief's 200: not either.
    assert fired(is_new_customer=1, amount_tenant=150, amount_new_customer_percentile=0.9999) == set()
    takeover = {"is_new_customer": 0, "new_device": 1, "new_country": 1, "amount_robust_z": 3.5,
                "amount_tenant": 180}
    assert fired(**takeover) == {"account_takeover"}
    assert fired(**(takeover | {"new_device": 0})) == set()
    assert fired(**(takeover | {"amount_robust_z": 1.0})) == set()


def test_serial_returner_rule_fires_on_returns_of_customers_who_return_most_of_what_they_buy():
    from scoring.config import RuleThresholds
    from scoring.features import FEATURE_NAMES
    from scoring.rules import RuleSet
    from scoring.services import serial_returner_rule

    rules = RuleSet([serial_returner_rule(RuleThresholds())])
    base = {name: 0 for name in FEATURE_NAMES} | {"event_type": "return", "status": "", "country": "FR",
                                                   "currency": "EUR", "payment_method": "", "channel": ""}

    def fires(**features):  # type: ignore[no-untyped-def]
        return bool(rules.evaluate_row(base | features).hits[0, 0])

    assert fires(cust_returned_orders_window=3, cust_orders_window=5, cust_return_rate=0.6)
    assert fires(cust_returned_orders_window=6, cust_orders_window=6, cust_return_rate=1.0)
    # A single return, even of the only order (the customer's rate is 1): one decision, not a pattern.
    assert not fires(cust_returned_orders_window=1, cust_orders_window=1, cust_return_rate=1.0)
    # Many returns but most orders kept (a loyal customer who sometimes returns).
    assert not fires(cust_returned_orders_window=4, cust_orders_window=20, cust_return_rate=0.2)
    # The same history on a payment: the rule is about returns.
    assert not fires(event_type="payment", cust_returned_orders_window=6, cust_orders_window=6, cust_return_rate=1.0)
    # Thresholds are tenant configuration.
    strict = RuleSet([serial_returner_rule(RuleThresholds(serial_return_orders=5, serial_return_rate=0.8))])
    assert not strict.evaluate_row(base | {"cust_returned_orders_window": 4, "cust_return_rate": 1.0}).hits[0, 0]


def test_create_update_delete_are_versioned(tenant_a):
    admin = tenant_a.client("admin")
    created = admin.post("/api/v1/rules", RULE, format="json")
    assert created.status_code == 201, created.content
    rule = created.json()
    assert rule["version"] == 1
    updated = admin.patch(f"/api/v1/rules/{rule['id']}", {"score": 0.6, "enabled": False}, format="json")
    assert updated.status_code == 200 and updated.json()["version"] == 2 and updated.json()["score"] == 0.6
    replaced = admin.put(f"/api/v1/rules/{rule['id']}", {**RULE, "severity": "high"}, format="json")
    assert replaced.json()["version"] == 3 and replaced.json()["score"] == 0.4
    versions = admin.get(f"/api/v1/rules/{rule['id']}/versions").json()["results"]
    assert [(v["version"], v["change"]) for v in versions] == [(3, "updated"), (2, "updated"), (1, "created")]
    assert versions[1]["definition"]["enabled"] is False
    assert admin.delete(f"/api/v1/rules/{rule['id']}").status_code == 204
    assert admin.get(f"/api/v1/rules/{rule['id']}").status_code == 404
    from scoring.models import RuleVersion

    assert list(RuleVersion.objects.filter(rule_name="big_basket_fr").values_list("change", flat=True)) == [
        "deleted", "updated", "updated", "created"]


def test_a_rule_change_reaches_scoring_without_a_deploy(tenant_a):
    admin = tenant_a.client("admin")
    assert admin.post("/api/v1/rules", {**RULE, "action": "block", "score": 0.9}, format="json").status_code == 201
    out = tenant_a.client("ingest").post("/api/v1/fraud-check", {"amount": "260", "country": "FR",
                                                                  "customer_id": "c-fr"}, format="json").json()
    assert out["decision"] == "BLOCK" and out["reasons"][0]["detector"] == "rule:big_basket_fr"


@pytest.mark.parametrize(("body", "path"), [
    ({**RULE, "condition": {"feature": "__class__", "op": ">", "value": 1}}, "condition.feature"),
    ({**RULE, "condition": {"feature": "amount_tenant", "op": "__gt__", "value": 1}}, "condition.op"),
    ({**RULE, "condition": {"all": [{"feature": "country", "op": ">", "value": "FR"}]}}, "condition.all[0].op"),
    ({**RULE, "condition": {"feature": "amount_tenant", "op": ">", "value": "1; DROP TABLE"}}, "condition.value"),
    ({**RULE, "condition": "amount_tenant > 5 or __import__('os').system('x')"}, "condition"),
    ({**RULE, "score": 3}, "score"),
    ({**RULE, "name": ""}, "name"),
    ({**RULE, "expression": "1"}, "non_field_errors"),
])
def test_unsafe_or_malformed_rules_are_refused_with_the_path(tenant_a, body, path):
    response = tenant_a.client("admin").post("/api/v1/rules", body, format="json")
    assert response.status_code == 400, response.content
    assert path in response.json()["errors"], response.json()


def test_deeply_nested_rule_is_refused(tenant_a):
    node: dict = {"feature": "amount_tenant", "op": ">", "value": 1}
    for _ in range(12):
        node = {"not": node}
    response = tenant_a.client("admin").post("/api/v1/rules", {**RULE, "condition": node}, format="json")
    assert response.status_code == 400
    assert any("nested too deeply" in m for ms in response.json()["errors"].values() for m in ms)


def test_duplicate_names_and_read_keys_are_refused(tenant_a):
    admin = tenant_a.client("admin")
    assert admin.post("/api/v1/rules", RULE, format="json").status_code == 201
    again = admin.post("/api/v1/rules", RULE, format="json")
    assert again.status_code == 400 and "name" in again.json()["errors"]
    assert tenant_a.client("read").post("/api/v1/rules", {**RULE, "name": "x"}, format="json").status_code == 403


def test_dry_run_counts_what_a_rule_would_have_flagged(tenant_a):
    start = recent(48)
    events = [payment(f"dr{i}", start + timedelta(hours=i), customer=f"dr-c{i % 5}", amount=100 + 20 * i,
                      ip=f"192.0.2.{i}", device=f"dr-d{i}") for i in range(30)]
    ingest_and_consume(tenant_a.tenant, events)
    rule = {**RULE, "condition": {"feature": "amount_tenant", "op": ">", "value": 500}}
    response = tenant_a.client("admin").post("/api/v1/rules/dry-run", {"rule": rule, "days": 3}, format="json")
    assert response.status_code == 200, response.content
    report = response.json()
    expected = sum(1 for e in events if float(e["amount"]) > 500)
    assert (report["evaluated"], report["flagged"]) == (30, expected)
    assert len(report["sample"]) == min(20, expected)
    assert report["sample"][0]["event_id"] == "dr21" and "amount" in report["sample"][0]["reason"]
    # A window-dependent feature: the 5 customers pay every 5 hours, so never twice in an hour...
    velocity = {**RULE, "condition": {"feature": "cust_count_24h", "op": ">=", "value": 5}}
    report = tenant_a.client("admin").post("/api/v1/rules/dry-run", {"rule": velocity, "days": 3},
                                           format="json").json()
    # ...but 5 times in 24 h from their 5th payment (i >= 20) on.
    assert report["flagged"] == 10
    # Nothing of the dry-run is left in Redis.
    from pulse.lib.redis import get_redis

    assert not list(get_redis().scan_iter(match="pulse:{dryrun.*"))


def test_dry_run_of_the_serial_returner_rule_evaluates_returns(tenant_a):
    from scoring.config import RuleThresholds
    from scoring.services import serial_returner_rule
    from tests.scoring.fraud_helpers import serial_returner

    buys, rets = serial_returner("dry", recent(60))
    ingest_and_consume(tenant_a.tenant, sorted(buys + rets, key=lambda e: e["timestamp"]))
    rule = {**serial_returner_rule(RuleThresholds()), "name": "returner_try"}
    report = tenant_a.client("admin").post("/api/v1/rules/dry-run", {"rule": rule, "days": 3}, format="json").json()
    # 5 orders + 5 payments + 5 returns; the returns of the 3rd and 4th returned orders
    assert (report["evaluated"], report["flagged"]) == (15, 2)
    assert {s["event_id"] for s in report["sample"]} == {"dry-ret2-0", "dry-ret3-0"}


@pytest.mark.parametrize(("body", "field"), [
    ({"rule": {**RULE, "score": -1}, "days": 3}, "rule.score"),
    ({"days": 3}, "rule"),
    ({"rule": RULE, "days": 0}, "days"),
    ({"rule": RULE, "days": "7"}, "days"),
])
def test_dry_run_bad_input(tenant_a, body, field):
    response = tenant_a.client("admin").post("/api/v1/rules/dry-run", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"], response.json()
