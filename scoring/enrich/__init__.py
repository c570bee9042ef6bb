"""Transaction enrichment: Redis-backed velocity/history state -> the features of `scoring.features`."""

from __future__ import annotations

from scoring.enrich.engine import (
    TRANSACTION_TYPES,
    EnrichConfig,
    Enricher,
    FeatureFrame,
    amount_percentile,
    amount_prior,
    clear_state,
    hour_of_week,
    new_customer_quantiles,
    rebuild_state,
    record_key,
    related_events,
    return_rate,
    sync_traffic_mark,
    tenant_prefix,
)

__all__ = [
    "TRANSACTION_TYPES",
    "EnrichConfig",
    "Enricher",
    "FeatureFrame",
    "amount_percentile",
    "amount_prior",
    "clear_state",
    "hour_of_week",
    "new_customer_quantiles",
    "rebuild_state",
    "record_key",
    "related_events",
    "return_rate",
    "sync_traffic_mark",
    "tenant_prefix",
]
