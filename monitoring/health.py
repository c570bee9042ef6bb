"""KPI evaluation figures for GET /api/v1/status: cells evaluated (what evaluate_scenario divides false
alarms by), last run, series whose evaluation lags."""

from __future__ import annotations

from typing import Any

from django.db import connection

from pulse.lib.health import register


@register("kpi")
def check_kpi() -> dict[str, Any]:
    if connection.schema_name == "public":
        return {"ok": True}
    from .models import MonitorState, SeriesState

    state = MonitorState.objects.order_by("id").first()
    return {"ok": True, "kpi_buckets_evaluated": state.buckets_evaluated if state else 0,
            "last_run_at": state.last_run_at.isoformat() if state and state.last_run_at else None,
            "series": SeriesState.objects.count()}
