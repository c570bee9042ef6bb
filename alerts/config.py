"""The `alerts` section of Tenant.config (validated on save; defaults apply to missing keys)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class AlertsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # An open alert resolves when no anomaly with its fingerprint arrived for this long.
    resolve_after_minutes: int = Field(60, ge=1, le=7 * 24 * 60)
    # Default cooldown per fingerprint and channel when a policy does not set its own.
    cooldown_seconds: int = Field(900, ge=0, le=7 * 24 * 3600)
    # Per channel: immediate notifications per rolling hour; beyond it they fold into a digest.
    rate_limit_per_hour: int = Field(30, ge=1, le=10_000)
    # Window of the digest that rate-limited notifications fold into.
    digest_interval_minutes: int = Field(15, ge=1, le=24 * 60)
    # Transient delivery failures are retried (with backoff) up to this many attempts in total.
    delivery_max_attempts: int = Field(5, ge=1, le=20)
    # Live-feed messages kept for catch-up after a reconnect.
    feed_retention_hours: int = Field(48, ge=1, le=30 * 24)
