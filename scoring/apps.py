from __future__ import annotations

from typing import Any

from django.apps import AppConfig


class ScoringConfig(AppConfig):
    name = "scoring"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from .models import CalibrationState, ModelVersion, Rule, RuleVersion
        from .pipeline import revisions_forget

        for model in (Rule, RuleVersion, ModelVersion, CalibrationState):
            uid = f"scoring-revisions-forget-{model.__name__}"
            post_save.connect(revisions_forget, sender=model, dispatch_uid=f"{uid}-save")
            post_delete.connect(revisions_forget, sender=model, dispatch_uid=f"{uid}-delete")

        from django_tenants.signals import post_schema_sync

        from tenants.models import Tenant

        post_schema_sync.connect(_tenant_created, dispatch_uid="scoring-state-new-tenant")
        post_delete.connect(_tenant_deleted, sender=Tenant, dispatch_uid="scoring-state-tenant-deleted")


def _tenant_created(sender: Any, tenant: Any, **_: Any) -> None:
    from .pipeline import tenant_state_forget

    tenant_state_forget(tenant.schema_name)


def _tenant_deleted(sender: Any, instance: Any, **_: Any) -> None:
    from .pipeline import tenant_state_forget

    tenant_state_forget(instance.schema_name)
