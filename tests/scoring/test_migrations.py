"""Data migrations of the scoring app, run as functions on a tenant schema."""

from __future__ import annotations

from importlib import import_module
from types import SimpleNamespace

from django.apps import apps
from django.db import connection


def test_0004_gives_existing_tenants_the_serial_returner_and_the_new_customer_gate(tenant_a):
    from scoring.models import Rule, RuleVersion
    from scoring.rules import RuleSet
    from scoring.services import rules_ensure_defaults

    migration = import_module("scoring.migrations.0004_default_rules_returns_and_new_customers")
    rules_ensure_defaults(tenant=tenant_a.tenant)
    # The tenant's defaults as they were created before: no serial returner, the robust-z gate.
    Rule.objects.filter(name="serial_returner").delete()
    RuleVersion.objects.filter(rule_name="serial_returner").delete()
    Rule.objects.filter(name="new_customer_high_amount").update(condition={"all": [
        {"feature": "is_new_customer", "op": "==", "value": 1}, {"feature": "amount_tenant", "op": ">", "value": 200},
        {"feature": "amount_robust_z", "op": ">=", "value": 2.0}]},
        description="new customer spending more than 200 (unusually large for this shop)")
    tenant = tenant_a.tenant
    tenant.config = {"scoring": {"rules": {"serial_return_orders": 4}}}
    tenant.save(update_fields=["config"])

    migration.forwards(apps, SimpleNamespace(connection=connection))
    rules = {r.name: r for r in Rule.objects.all()}
    returner = rules["serial_returner"]
    assert returner.condition["all"][1] == {"feature": "cust_returned_orders_window", "op": ">=", "value": 4}
    assert RuleVersion.objects.filter(rule_name="serial_returner", change="created").count() == 1
    new_customer = rules["new_customer_high_amount"]
    assert new_customer.version == 2
    assert new_customer.condition["all"][2] == {"feature": "amount_new_customer_percentile", "op": ">=",
                                                "value": 0.998}
    assert "top of this shop" in new_customer.description
    assert len(RuleSet([r.definition() for r in rules.values()])) == len(rules)  # all valid

    # Run again (or on a tenant that edited or deleted them): nothing changes.
    Rule.objects.filter(name="serial_returner").delete()
    before = RuleVersion.objects.count()
    migration.forwards(apps, SimpleNamespace(connection=connection))
    assert RuleVersion.objects.count() == before and not Rule.objects.filter(name="serial_returner").exists()


def test_0004_leaves_a_tenant_without_rules_to_first_use(tenant_a):
    from scoring.models import Rule, RuleVersion

    migration = import_module("scoring.migrations.0004_default_rules_returns_and_new_customers")
    RuleVersion.objects.all().delete()
    Rule.objects.all().delete()
    migration.forwards(apps, SimpleNamespace(connection=connection))
    assert not Rule.objects.exists()
