"""Django admin for a tenant's scoring configuration: rules (validated and versioned exactly like the
API, so they change without a deploy), the model registry and calibration states (read-only)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import connection
from django.http import HttpRequest

from .models import CalibrationState, ModelVersion, Rule, RuleVersion


class TenantOnlyAdmin(admin.ModelAdmin):
    def has_module_permission(self, request: HttpRequest) -> bool:
        return connection.schema_name != "public" and super().has_module_permission(request)


class RuleForm(forms.ModelForm):
    class Meta:
        model = Rule
        fields = ["name", "description", "condition", "score", "severity", "action", "enabled"]

    def clean(self) -> dict[str, Any]:
        from scoring.rules import RuleValidationError, validate_rule

        data = super().clean()
        if self.errors:
            return data
        definition = {k: data.get(k) for k in self.Meta.fields}
        definition["description"] = definition["description"] or ""
        try:
            validate_rule(definition, "rule")
        except RuleValidationError as exc:
            for path, message in exc.errors:
                field = path.split(".")[1].split("[")[0] if "." in path else None
                self.add_error(field if field in self.fields else None, f"{path}: {message}")
        return data


class RuleVersionInline(admin.TabularInline):
    model = RuleVersion
    extra = 0
    can_delete = False
    fields = ["version", "change", "definition", "changed_by", "created_at"]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Rule)
class RuleAdmin(TenantOnlyAdmin):
    form = RuleForm
    list_display = ["name", "severity", "action", "score", "enabled", "version", "updated_at"]
    list_filter = ["enabled", "severity", "action"]
    search_fields = ["name", "description"]
    readonly_fields = ["version", "created_at", "updated_at"]
    inlines = [RuleVersionInline]

    def save_model(self, request: HttpRequest, obj: Rule, form: Any, change: bool) -> None:
        # Through the services, so the admin versions changes exactly like the API.
        from .services import RuleError, rule_create, rule_update

        who = f"admin:{request.user}"
        definition = {k: form.cleaned_data.get(k) for k in RuleForm.Meta.fields}
        definition["description"] = definition["description"] or ""
        try:
            if change:
                saved = rule_update(rule=Rule.objects.get(pk=obj.pk), changes=definition, changed_by=who, partial=False)
            else:
                saved = rule_create(definition=definition, changed_by=who)
        except RuleError as exc:  # a race with another change: report it instead of a 500
            messages.error(request, str(exc))
            return
        obj.pk, obj.version = saved.pk, saved.version

    def delete_model(self, request: HttpRequest, obj: Rule) -> None:
        from .services import rule_delete

        rule_delete(rule=obj, changed_by=f"admin:{request.user}")

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        from .services import rule_delete

        for rule in queryset:
            rule_delete(rule=rule, changed_by=f"admin:{request.user}")


@admin.register(ModelVersion)
class ModelVersionAdmin(TenantOnlyAdmin):
    list_display = ["version", "kind", "status", "sha256", "created_at", "promoted_at"]
    list_filter = ["status", "kind"]
    actions = ["promote"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in ModelVersion._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # models are registered by training (scoring.registry), not typed in

    @admin.action(description="Promote the selected model (exactly one)")
    def promote(self, request: HttpRequest, queryset: Any) -> None:
        from .registry import RegistryError, model_promote

        if queryset.count() != 1:
            messages.error(request, "Select exactly one model version to promote.")
            return
        try:
            row = model_promote(version=queryset.get().version)
        except RegistryError as exc:
            messages.error(request, str(exc))
            return
        messages.success(request, f"Model v{row.version} is now active.")


@admin.register(CalibrationState)
class CalibrationStateAdmin(TenantOnlyAdmin):
    list_display = ["detector", "model_version", "n_reference", "fitted_at"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in CalibrationState._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
