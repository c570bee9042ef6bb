"""The `kpi` section of Tenant.config (validated on save; defaults apply to missing keys)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class KpiConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Which dimensions get minute buckets (hour and day buckets exist for every dimension).
    minute_dimensions: list[str] = Field(default_factory=lambda: ["total", "channel", "campaign"])
    # How client-sent `metric` points combine within a bucket: sum, mean or last (default mean).
    metric_aggregation: dict[str, str] = Field(default_factory=dict)

    @field_validator("metric_aggregation")
    @classmethod
    def _check_aggregation(cls, value: dict[str, str]) -> dict[str, str]:
        bad = {k: v for k, v in value.items() if v not in {"sum", "mean", "last"}}
        if bad:
            raise ValueError(f"aggregation must be sum, mean or last: {bad}")
        return value
