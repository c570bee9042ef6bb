"""Admin: labels, thresholds with their change history (pin / roll back as actions), drift reports and
retraining jobs. Threshold values are changed through the actions, so every change is recorded."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages

from . import services
from .models import DriftReport, Label, LabelHistory, RetrainJob, Threshold, ThresholdChange


@admin.register(Label)
class LabelAdmin(admin.ModelAdmin):
    list_display = ["event_id", "label", "known_at", "source", "flagged", "by"]
    list_filter = ["label", "source", "flagged"]
    search_fields = ["event_id"]


@admin.register(LabelHistory)
class LabelHistoryAdmin(admin.ModelAdmin):
    list_display = ["created_at", "event_id", "anomaly_id", "label", "source", "by"]
    list_filter = ["source", "label"]
    search_fields = ["event_id", "note"]


class ThresholdChangeInline(admin.TabularInline):
    model = ThresholdChange
    fk_name = "threshold"
    extra = 0
    can_delete = False
    fields = ["created_at", "action", "old_value", "new_value", "mode", "reason", "expected_before",
              "expected_after", "by", "rolled_back_by"]
    readonly_fields = fields
    ordering = ["-id"]


@admin.register(Threshold)
class ThresholdAdmin(admin.ModelAdmin):
    list_display = ["detector", "metric", "value", "pinned", "pinned_by", "updated_at"]
    readonly_fields = ["detector", "metric", "value", "pinned", "pinned_by", "updated_at"]
    inlines = [ThresholdChangeInline]
    actions = ["pin", "unpin"]

    @admin.action(description="Pin (recalibration leaves it alone)")
    def pin(self, request: Any, queryset: Any) -> None:
        for row in queryset:
            services.threshold_pin(detector=row.detector, metric=row.metric, by=str(request.user))

    @admin.action(description="Release to recalibration")
    def unpin(self, request: Any, queryset: Any) -> None:
        for row in queryset:
            services.threshold_pin(detector=row.detector, metric=row.metric, by=str(request.user), pinned=False)


@admin.register(ThresholdChange)
class ThresholdChangeAdmin(admin.ModelAdmin):
    list_display = ["created_at", "threshold", "action", "old_value", "new_value", "mode", "by", "rolled_back_by"]
    list_filter = ["action", "mode"]
    readonly_fields = [f.name for f in ThresholdChange._meta.fields]
    actions = ["roll_back"]

    @admin.action(description="Roll back the selected changes")
    def roll_back(self, request: Any, queryset: Any) -> None:
        for change in queryset.order_by("-id"):
            try:
                services.threshold_rollback(change_id=change.pk, by=str(request.user))
            except services.LearningError as exc:
                self.message_user(request, f"change {change.pk}: {exc}", messages.WARNING)


@admin.register(DriftReport)
class DriftReportAdmin(admin.ModelAdmin):
    list_display = ["created_at", "model_version", "level", "n_reference", "n_recent", "anomaly_id"]
    list_filter = ["level"]
    readonly_fields = [f.name for f in DriftReport._meta.fields]


@admin.register(RetrainJob)
class RetrainJobAdmin(admin.ModelAdmin):
    list_display = ["created_at", "trigger", "status", "champion_version", "model_version", "promoted", "verdict"]
    list_filter = ["status", "trigger", "promoted"]
    readonly_fields = [f.name for f in RetrainJob._meta.fields]
