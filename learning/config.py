"""The `learning` section of Tenant.config (validated on save; defaults apply to missing keys)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class LearningConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
