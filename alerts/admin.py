"""Django admin for a tenant's alerting (served on the tenant's host, in its schema)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin

from .models import Alert, Channel, Delivery, Policy, Snooze
from .transports import ChannelConfigError, transport_class


class ChannelForm(forms.ModelForm):
    class Meta:
        model = Channel
        fields = ["kind", "name", "config", "is_enabled", "disabled_reason"]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        kind, config = data.get("kind"), data.get("config")
        if kind and config is not None:
            previous = self.instance.config if self.instance.pk and self.instance.kind == kind else None
            try:
                data["config"] = transport_class(kind).clean_config(config, previous=previous)
            except ChannelConfigError as exc:
                raise forms.ValidationError(str(exc)) from exc
        return data


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    form = ChannelForm
    list_display = ["name", "kind", "is_enabled", "disabled_reason", "updated_at"]
    list_filter = ["kind", "is_enabled"]
    search_fields = ["name"]


@admin.register(Policy)
class PolicyAdmin(admin.ModelAdmin):
    list_display = ["name", "enabled", "min_severity", "digest_minutes", "cooldown_seconds", "notify_order_status"]
    list_filter = ["enabled", "min_severity", "notify_order_status"]
    filter_horizontal = ["channels"]
    search_fields = ["name"]


class DeliveryInline(admin.TabularInline):
    model = Delivery
    fields = ["channel", "kind", "event", "status", "attempts", "response_code", "error", "created_at", "sent_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ["id", "title", "status", "peak_severity", "count", "opened_at", "last_seen_at"]
    list_filter = ["status", "peak_severity", "kind"]
    search_fields = ["title", "fingerprint", "entity", "metric"]
    readonly_fields = [f.name for f in Alert._meta.fields]
    inlines = [DeliveryInline]


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ["id", "channel", "kind", "event", "status", "attempts", "response_code", "created_at"]
    list_filter = ["status", "kind"]
    readonly_fields = [f.name for f in Delivery._meta.fields]


@admin.register(Snooze)
class SnoozeAdmin(admin.ModelAdmin):
    list_display = ["fingerprint", "entity", "until", "created_by", "cancelled_at"]
    readonly_fields = ["created_by", "created_at"]

    def save_model(self, request: Any, obj: Snooze, form: Any, change: bool) -> None:
        if not obj.created_by:
            obj.created_by = request.user.get_username()
        super().save_model(request, obj, form, change)
