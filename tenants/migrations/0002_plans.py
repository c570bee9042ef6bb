from __future__ import annotations

from django.db import migrations

PLANS = [
    ("free", "Free", 100_000, 50_000, 30),
    ("starter", "Starter", 2_000_000, 500_000, 90),
    ("growth", "Growth", 20_000_000, 5_000_000, 180),
    ("enterprise", "Enterprise", 0, 0, 730),
]


def add_plans(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.schema_name != "public":
        return
    Plan = apps.get_model("tenants", "Plan")
    for code, name, events, calls, retention in PLANS:
        Plan.objects.update_or_create(code=code, defaults={
            "name": name, "events_per_day": events, "api_calls_per_day": calls, "retention_days": retention})


class Migration(migrations.Migration):
    dependencies = [("tenants", "0001_initial")]
    operations = [migrations.RunPython(add_plans, migrations.RunPython.noop)]
