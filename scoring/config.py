"""The `scoring` section of Tenant.config (validated on save; defaults apply to missing keys).

Everything a risk team may want to tune without a deploy: currency rates, enrichment windows,
the thresholds of the default rule set (used when the tenant's rules are first created),
consensus thresholds and k-of-n, which decisions become anomalies, and calibration."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EnrichmentSettings(_Section):
    new_customer_seconds: int = Field(default=86_400, ge=0)
    short_window_seconds: int = Field(default=3_600, ge=60)
    long_window_seconds: int = Field(default=86_400, ge=3_600)
    attribute_retention_seconds: int = Field(default=90 * 86_400, ge=86_400)
    profile_ttl_seconds: int = Field(default=180 * 86_400, ge=86_400)
    # Purchases and returns behind a customer's return rate.
    return_window_seconds: int = Field(default=90 * 86_400, ge=86_400)

    @model_validator(mode="after")
    def _windows(self) -> EnrichmentSettings:
        if self.short_window_seconds >= self.long_window_seconds:
            raise ValueError("short_window_seconds must be shorter than long_window_seconds")
        return self


class RuleThresholds(_Section):
    """Thresholds of the default rule set (amounts in the tenant's currency). Used when a tenant's
    rules are created on first use; later changes go through /api/v1/rules or the admin."""

    max_tx_per_hour: int = Field(default=5, ge=1)
    max_amount_per_hour: float = Field(default=1_000.0, gt=0)
    new_customer_amount: float = Field(default=200.0, gt=0)
    ip_customers: int = Field(default=3, ge=2)
    device_customers: int = Field(default=3, ge=2)
    large_amount: float = Field(default=500.0, gt=0)
    # Tenant-relative conditions (robust z against the shop's own amount distribution, see
    # scoring.services.tenant_default_rules): the fixed amounts above cannot suit every shop.
    unusual_amount_z: float = Field(default=2.0, gt=0)
    takeover_amount_z: float = Field(default=3.0, gt=0)
    # "New customer spending more than new_customer_amount" also needs the amount to be in the top
    # (1 - this) of the shop's recent new-customer purchases: a review budget of 1 in 500 of them.
    new_customer_amount_percentile: float = Field(default=0.998, gt=0, lt=1)
    # Serial returner: at least this many returned orders in the return window, and at least this
    # share of the customer's orders there returned.
    serial_return_orders: int = Field(default=3, ge=1)
    serial_return_rate: float = Field(default=0.5, gt=0, le=1)

    def brief_defaults(self) -> dict[str, float]:
        """The arguments of scoring.rules.default_rules."""
        return self.model_dump(include={"max_tx_per_hour", "max_amount_per_hour", "new_customer_amount",
                                        "ip_customers", "device_customers", "large_amount"})


class ConsensusSettings(_Section):
    review_threshold: float = Field(default=0.3, gt=0, lt=1)
    block_threshold: float = Field(default=0.7, gt=0, le=1)
    critical_threshold: float = Field(default=0.9, gt=0, le=1)
    default_detector_weight: float = Field(default=0.5, ge=0, le=1)
    detector_weights: dict[str, float] = Field(default_factory=dict)
    evidence_start: float = Field(default=0.99, ge=0, lt=1)
    vote_threshold: float = Field(default=0.99, ge=0, le=1)
    k_of_n: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _order(self) -> ConsensusSettings:
        if not self.review_threshold < self.block_threshold <= self.critical_threshold:
            raise ValueError("need review_threshold < block_threshold <= critical_threshold")
        for name, weight in self.detector_weights.items():
            if not 0.0 <= weight <= 1.0:
                raise ValueError(f"detector_weights.{name} must be between 0 and 1")
        return self


class CalibrationSettings(_Section):
    # Below this many recent scores per detector the model's global calibration is kept.
    min_scores: int = Field(default=5_000, ge=100)
    # A new tenant gets its first calibration at this many scores, refitted each time the count
    # doubles until `min_scores` (the global calibration may not fit its traffic at all).
    warmup_scores: int = Field(default=1_000, ge=100)
    # Recent raw scores kept per detector (a Redis reservoir fed by the async path).
    reservoir_size: int = Field(default=50_000, ge=1_000, le=500_000)


class ScoringConfig(_Section):
    # Units of the tenant's currency for one unit of the key currency. Events in a currency that is
    # neither the tenant's nor listed here are refused at ingestion with a clear reason.
    fx_rates: dict[str, float] = Field(default_factory=dict)
    enrichment: EnrichmentSettings = Field(default_factory=EnrichmentSettings)
    rules: RuleThresholds = Field(default_factory=RuleThresholds)
    consensus: ConsensusSettings = Field(default_factory=ConsensusSettings)
    calibration: CalibrationSettings = Field(default_factory=CalibrationSettings)
    # Decisions that become Anomaly rows on the async path (fraud-check answers every decision).
    anomaly_decisions: list[Literal["REVIEW", "BLOCK"]] = Field(
        default_factory=lambda: ["REVIEW", "BLOCK"])  # type: ignore[arg-type]
    # How far back the rules dry-run replays events before its window, so that 24 h velocity and
    # customer history exist at the window's start (tenure beyond it is under-estimated).
    dry_run_warmup_days: int = Field(default=30, ge=1, le=180)

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

    def fingerprint(self) -> str:
        """Short hash of the settings: part of the engine cache key, so a config change applies."""
        return hashlib.sha1(json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:12]


def scoring_config(tenant: Any) -> ScoringConfig:
    from tenants.config import tenant_section

    return tenant_section(tenant, "scoring")


def fx_rates_for(tenant: Any) -> dict[str, float]:
    """Rates into the tenant's currency, the tenant's own currency included (1.0)."""
    return {**scoring_config(tenant).fx_rates, tenant.currency: 1.0}
