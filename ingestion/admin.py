"""Django admin for a tenant's ingestion configuration (import sources) and its uploads. Shown on
tenant hosts only: these tables live in tenant schemas."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db import connection
from django.http import HttpRequest

from .models import ImportedFile, ImportSource, Upload


class TenantOnlyAdmin(admin.ModelAdmin):
    def has_module_permission(self, request: HttpRequest) -> bool:
        return connection.schema_name != "public" and super().has_module_permission(request)


class ImportSourceForm(forms.ModelForm):
    class Meta:
        model = ImportSource
        fields = ["name", "kind", "location", "pattern", "format", "enabled", "poll_interval_seconds"]

    def clean(self) -> dict[str, Any]:
        from .imports import ImportConfigError, import_source_check

        data = super().clean()
        try:
            import_source_check(kind=data.get("kind", ""), location=data.get("location", ""),
                                format=data.get("format", "auto"))
        except ImportConfigError as exc:
            self.add_error("location", str(exc))
        return data


class ImportedFileInline(admin.TabularInline):
    model = ImportedFile
    extra = 0
    can_delete = False
    readonly_fields = ["name", "fingerprint", "sha256", "size_bytes", "upload", "seen_at"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ImportSource)
class ImportSourceAdmin(TenantOnlyAdmin):
    form = ImportSourceForm
    list_display = ["name", "kind", "location", "pattern", "enabled", "poll_interval_seconds", "last_polled_at",
                    "files_imported", "last_error"]
    list_filter = ["kind", "enabled"]
    readonly_fields = ["last_polled_at", "last_error", "files_imported", "created_at"]
    inlines = [ImportedFileInline]


@admin.register(Upload)
class UploadAdmin(TenantOnlyAdmin):
    list_display = ["id", "filename", "source", "status", "rows_done", "rows_total", "rows_accepted",
                    "rows_rejected", "created_at", "finished_at"]
    list_filter = ["status", "source"]
    search_fields = ["filename", "sha256"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
