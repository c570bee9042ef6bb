"""The `scoring` section of Tenant.config (validated on save; defaults apply to missing keys)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class ScoringConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Units of the tenant's currency for one unit of the key currency. Events in a currency that is
    # neither the tenant's nor listed here are refused at ingestion with a clear reason.
    fx_rates: dict[str, float] = Field(default_factory=dict)

    @field_validator("fx_rates")
    @classmethod
    def _check_rates(cls, rates: dict[str, float]) -> dict[str, float]:
        from ingestion.iso4217 import ACCEPTED_CURRENCIES

        for code, rate in rates.items():
            if code not in ACCEPTED_CURRENCIES:
                raise ValueError(f"'{code}' is not an ISO 4217 currency code")
            if not rate > 0:
                raise ValueError(f"the rate for {code} must be positive")
        return rates


def fx_rates_for(tenant: Any) -> dict[str, float]:
    """Rates into the tenant's currency, the tenant's own currency included (1.0)."""
    from tenants.config import tenant_section

    return {**tenant_section(tenant, "scoring").fx_rates, tenant.currency: 1.0}
