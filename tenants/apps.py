from __future__ import annotations

from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Tenants and access"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from . import health  # noqa: F401  (registers the platform health checks)
        from .models import ApiKey, Tenant
        from .selectors import api_keys_forget

        for model in (ApiKey, Tenant):
            post_save.connect(api_keys_forget, sender=model, dispatch_uid=f"api-keys-forget-save-{model.__name__}")
            post_delete.connect(api_keys_forget, sender=model, dispatch_uid=f"api-keys-forget-del-{model.__name__}")
