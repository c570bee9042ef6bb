from __future__ import annotations

from django.contrib import admin, messages
from django.db import connection
from django.http import HttpRequest
from django_tenants.admin import TenantAdminMixin

from .models import ApiKey, Domain, Membership, Plan, Tenant, UsageCounter
from .services import api_key_create, api_key_revoke


def _on_public() -> bool:
    return connection.schema_name == "public"


class SharedOnlyAdmin(admin.ModelAdmin):
    """Platform objects are administered from the public host only."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return _on_public() and super().has_module_permission(request)


@admin.register(Plan)
class PlanAdmin(SharedOnlyAdmin):
    list_display = ["code", "name", "events_per_day", "api_calls_per_day", "retention_days"]


class DomainInline(admin.TabularInline):
    model = Domain
    extra = 0


@admin.register(Tenant)
class TenantAdmin(TenantAdminMixin, SharedOnlyAdmin):
    list_display = ["slug", "name", "plan", "timezone", "currency", "is_active", "created_at"]
    list_filter = ["plan", "is_active"]
    search_fields = ["slug", "name"]
    inlines = [DomainInline]

    def get_readonly_fields(self, request, obj=None):  # type: ignore[no-untyped-def]
        return ["schema_name", "slug"] if obj else []

    def save_model(self, request, obj, form, change):  # type: ignore[no-untyped-def]
        creating = obj.pk is None
        if creating and not obj.schema_name:
            obj.schema_name = Tenant.schema_for_slug(obj.slug)
        super().save_model(request, obj, form, change)
        if creating:
            Domain.objects.get_or_create(domain=f"{obj.slug}.localhost", defaults={"tenant": obj, "is_primary": True})
            _, raw = api_key_create(tenant=obj, name="first admin key", scopes=["ingest", "read", "admin"],
                                    created_by=request.user.get_username())
            messages.warning(request, f"First API key for {obj.slug} (shown once): {raw}")

    def get_fields(self, request, obj=None):  # type: ignore[no-untyped-def]
        fields = ["name", "slug", "plan", "timezone", "currency", "is_active", "config"]
        return fields + ["schema_name"] if obj else fields


@admin.register(ApiKey)
class ApiKeyAdmin(SharedOnlyAdmin):
    list_display = ["name", "tenant", "prefix", "scopes", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["tenant"]
    readonly_fields = ["prefix", "hashed_key", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request: HttpRequest, queryset) -> None:  # type: ignore[no-untyped-def]
        for key in queryset:
            api_key_revoke(key=key)

    def save_model(self, request, obj, form, change):  # type: ignore[no-untyped-def]
        if change:
            return super().save_model(request, obj, form, change)
        key, raw = api_key_create(tenant=obj.tenant, name=obj.name, scopes=obj.scopes or ["read"],
                                  created_by=request.user.get_username())
        obj.pk = key.pk
        messages.warning(request, f"New API key (shown once): {raw}")


@admin.register(Membership)
class MembershipAdmin(SharedOnlyAdmin):
    list_display = ["user", "tenant", "role", "created_at"]
    list_filter = ["tenant", "role"]


@admin.register(UsageCounter)
class UsageCounterAdmin(SharedOnlyAdmin):
    list_display = ["tenant", "day", "events_accepted", "api_calls"]
    list_filter = ["tenant"]
