"""The `kpi` section of Tenant.config (validated on save; defaults apply to missing keys).

Rollups read `minute_dimensions` and `metric_aggregation`; the rest tunes KPI evaluation (when a bucket
counts as closed, how often fits are refreshed, how much a single run may walk) and stock alerts."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class KpiConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Which dimensions get minute buckets (hour and day buckets exist for every dimension).
    minute_dimensions: list[str] = Field(default_factory=lambda: ["total", "channel", "campaign"])
    # How client-sent `metric` points combine within a bucket: sum, mean or last (default mean).
    metric_aggregation: dict[str, str] = Field(default_factory=dict)

    # A bucket is evaluated once its end is this far in the past: events arriving a little late still count.
    close_grace_seconds: int = Field(default=120, ge=0, le=6 * 3600)
    # Create the default watched series (revenue, orders, conversion, campaigns, ...) on first use.
    watch_defaults: bool = True
    # Prophet refit period per granularity, in days (its forecast table covers one period).
    prophet_refit_days: dict[str, int] = Field(default_factory=lambda: {"hour": 1, "day": 7, "native": 1})
    # Bucket steps one evaluation run may walk per granularity (a year of minutes continues next run).
    max_steps_per_run: int = Field(default=5_000, ge=1, le=1_000_000)

    # Stock: reorder lead time and safety margin used by the days-of-cover check, velocity window.
    stock_lead_time_days: float = Field(default=3.0, ge=0)
    stock_safety_days: float = Field(default=3.0, ge=0)
    stock_velocity_days: int = Field(default=7, ge=1, le=60)

    @field_validator("metric_aggregation")
    @classmethod
    def _check_aggregation(cls, value: dict[str, str]) -> dict[str, str]:
        bad = {k: v for k, v in value.items() if v not in {"sum", "mean", "last"}}
        if bad:
            raise ValueError(f"aggregation must be sum, mean or last: {bad}")
        return value

    @field_validator("prophet_refit_days")
    @classmethod
    def _check_refit(cls, value: dict[str, int]) -> dict[str, int]:
        bad = {k: v for k, v in value.items() if k not in {"hour", "day", "native"} or not 1 <= int(v) <= 60}
        if bad:
            raise ValueError(f"refit days per hour/day/native, 1..60: {bad}")
        return value
