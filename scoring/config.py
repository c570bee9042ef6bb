"""The `scoring` and `kpi` sections of Tenant.config (validated on save; defaults apply to missing keys)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ScoringConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KpiConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
