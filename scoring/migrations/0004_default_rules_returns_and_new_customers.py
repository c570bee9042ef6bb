"""Bring tenants whose default rules already exist up to the current defaults (runs in each tenant
schema). A tenant without rules yet gets the whole current set on first use (rules_ensure_defaults).

- adds the `serial_returner` rule (returns of customers who return most of what they buy), unless the
  tenant has, or once had, a rule of that name, or is at the rule limit;
- moves `new_customer_high_amount` from "robust z >= 2 against the amount prior" to "in the top of the
  shop's new-customer purchases" (amount_new_customer_percentile), only where the tenant never
  edited it (version 1, the old default condition).

Thresholds come from the tenant's `scoring.rules` config when set there, like on first use. The rule
definitions are frozen here (not imported from scoring.services) so that this migration keeps
meaning what it meant when later defaults change.
"""

from __future__ import annotations

import json

from django.db import migrations
from django.utils import timezone

MAX_RULES = 100  # scoring.rules.schema.MAX_RULES when this migration was written


def _thresholds(connection) -> dict:  # type: ignore[no-untyped-def]
    rules = {}
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('tenants_tenant') IS NOT NULL")
        if cursor.fetchone()[0]:
            cursor.execute("SELECT config FROM tenants_tenant WHERE schema_name = current_schema()")
            row = cursor.fetchone()
            config = row[0] if row else None
            if isinstance(config, str):
                config = json.loads(config)
            rules = ((config or {}).get("scoring") or {}).get("rules") or {}
    return {"serial_return_orders": int(rules.get("serial_return_orders", 3)),
            "serial_return_rate": float(rules.get("serial_return_rate", 0.5)),
            "new_customer_amount_percentile": float(rules.get("new_customer_amount_percentile", 0.998))}


def _definition(rule) -> dict:  # type: ignore[no-untyped-def]
    return {"name": rule.name, "description": rule.description, "condition": rule.condition, "score": rule.score,
            "severity": rule.severity, "action": rule.action, "enabled": rule.enabled}


def forwards(apps, schema_editor) -> None:  # type: ignore[no-untyped-def]
    Rule = apps.get_model("scoring", "Rule")
    RuleVersion = apps.get_model("scoring", "RuleVersion")
    if not RuleVersion.objects.exists():
        return  # defaults not created yet: first use creates the current set
    t = _thresholds(schema_editor.connection)
    now = timezone.now()
    if (not RuleVersion.objects.filter(rule_name="serial_returner").exists()
            and Rule.objects.count() < MAX_RULES):
        rule = Rule.objects.create(
            name="serial_returner",
            description=f"{t['serial_return_orders']} or more returned orders, "
                        f"{t['serial_return_rate']:.0%} or more of the customer's orders returned",
            condition={"all": [{"feature": "event_type", "op": "==", "value": "return"},
                               {"feature": "cust_returned_orders_window", "op": ">=",
                                "value": t["serial_return_orders"]},
                               {"feature": "cust_return_rate", "op": ">=", "value": t["serial_return_rate"]}]},
            score=0.45, severity="medium", action="review", enabled=True, version=1, created_at=now, updated_at=now)
        RuleVersion.objects.create(rule=rule, rule_name=rule.name, version=1, change="created",
                                   definition=_definition(rule), changed_by="defaults (migration 0004)", created_at=now)
    rule = Rule.objects.filter(name="new_customer_high_amount", version=1).first()
    parts = (rule.condition or {}).get("all") if rule is not None else None
    if (isinstance(parts, list) and len(parts) == 3 and parts[2].get("feature") == "amount_robust_z"
            and [p.get("feature") for p in parts[:2]] == ["is_new_customer", "amount_tenant"]):
        rule.condition = {"all": [*parts[:2], {"feature": "amount_new_customer_percentile", "op": ">=",
                                               "value": t["new_customer_amount_percentile"]}]}
        rule.description = rule.description.replace(" (unusually large for this shop)",
                                                    " (in the top of this shop's new-customer purchases)")
        rule.version = 2
        rule.updated_at = now
        rule.save()
        RuleVersion.objects.create(rule=rule, rule_name=rule.name, version=2, change="updated",
                                   definition=_definition(rule), changed_by="defaults (migration 0004)", created_at=now)


class Migration(migrations.Migration):

    dependencies = [
        ("scoring", "0003_rules_registry_calibration"),
    ]

    operations = [
        migrations.RunPython(forwards, migrations.RunPython.noop),
    ]
