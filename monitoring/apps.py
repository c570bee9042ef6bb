from __future__ import annotations

from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "KPI monitoring"

    def ready(self) -> None:
        from . import health  # noqa: F401  (registers the kpi check of GET /api/v1/status)
