"""Shared, cached scenarios for the simulator tests (imported, not a conftest: the
project conftest needs Django and these tests run with --noconftest)."""

from __future__ import annotations

from functools import cache
from typing import Any

from simulator import Scenario, ScenarioConfig, generate, load_config


@cache
def small() -> Scenario:
    return generate(load_config("small"))


@cache
def small_events() -> tuple[dict[str, Any], ...]:
    return tuple(small().events)


# Every incident and fraud type in 10 quiet days: large enough for returns to happen,
# small enough to generate and check in well under a second.
ALL_TYPES: dict[str, Any] = {
    "name": "alltypes",
    "seed": 7,
    "start": "2024-10-07T00:00:00+02:00",
    "days": 10,
    "catalogue": {"n_products": 30},
    "customers": {"initial_customers": 3000},
    "traffic": {"sessions_per_day": 1500},
    "incidents": [
        {"id": "tl", "type": "tracking_loss", "channel": "social", "at": "2d", "duration": "1d"},
        {"id": "pe", "type": "price_error", "product_rank": 3, "at": "3d18h", "duration": "4h"},
        {"id": "so", "type": "stockout", "product_rank": 0, "at": "4d8h", "duration": "2d"},
        {"id": "sd", "type": "slow_decline", "at": "6d", "duration": "2d", "hold": "2d", "magnitude": 0.6},
        {"id": "fs", "type": "flash_sale", "at": "1d12h", "duration": "2h"},
        {"id": "co", "type": "checkout_outage", "at": "2d19h", "duration": "2h"},
        {"id": "cb", "type": "campaign_break", "campaign": "generic_search", "at": "1d8h", "duration": "6h"},
    ],
    "fraud": [
        {"id": "ra", "type": "return_abuse", "at": "0d", "duration": "9d", "customers": 2,
         "orders_per_customer": 4},
        {"id": "ct", "type": "card_testing", "at": "3d2h", "duration": "30m", "attempts": 50},
        {"id": "ir", "type": "ip_ring", "at": "2d", "duration": "1d", "customers": 4},
        {"id": "dr", "type": "device_ring", "at": "5d", "duration": "1d", "customers": 4},
        {"id": "hn", "type": "high_amount_new_customer", "at": "6d15h"},
        {"id": "ato", "type": "account_takeover", "at": "7d21h", "orders": 2, "history_orders": 3},
        {"id": "cs", "type": "compromised_store", "store_id": "app-android", "at": "1d", "duration": "8d",
         "fraud_share": 0.4},
    ],
}


@cache
def alltypes() -> Scenario:
    return generate(ScenarioConfig.model_validate(ALL_TYPES))


@cache
def alltypes_events() -> tuple[dict[str, Any], ...]:
    return tuple(alltypes().events)
