"""Django admin for a tenant's KPI monitoring (served on the tenant's host, in its schema)."""

from __future__ import annotations

from django.contrib import admin

from .models import KnownEvent, SeriesState, StockAlertState, StockThreshold, WatchedSeries


@admin.register(WatchedSeries)
class WatchedSeriesAdmin(admin.ModelAdmin):
    list_display = ["metric", "dimension", "value", "granularity", "direction", "min_duration", "consensus",
                    "enabled", "is_default"]
    list_filter = ["granularity", "dimension", "enabled", "is_default"]
    search_fields = ["metric", "value"]


@admin.register(KnownEvent)
class KnownEventAdmin(admin.ModelAdmin):
    list_display = ["name", "start", "end", "action", "dimension", "value"]
    list_filter = ["action"]
    search_fields = ["name"]


@admin.register(StockThreshold)
class StockThresholdAdmin(admin.ModelAdmin):
    list_display = ["product_id", "warning", "critical", "lead_time_days"]
    search_fields = ["product_id"]


@admin.register(SeriesState)
class SeriesStateAdmin(admin.ModelAdmin):
    list_display = ["metric", "dimension", "value", "granularity", "last_bucket", "period", "run_length"]
    list_filter = ["granularity", "dimension"]
    search_fields = ["metric", "value"]
    readonly_fields = [f.name for f in SeriesState._meta.fields]


@admin.register(StockAlertState)
class StockAlertStateAdmin(admin.ModelAdmin):
    list_display = ["product_id", "kind", "level", "updated_at"]
    readonly_fields = [f.name for f in StockAlertState._meta.fields]
