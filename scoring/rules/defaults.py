"""The default rule set, with tenant-configurable thresholds (amounts in the tenant currency)."""

from __future__ import annotations

from typing import Any


def default_rules(
    *,
    max_tx_per_hour: int = 5,
    max_amount_per_hour: float = 1_000.0,
    new_customer_amount: float = 200.0,
    ip_customers: int = 3,
    device_customers: int = 3,
    large_amount: float = 500.0,
) -> list[dict[str, Any]]:
    """Rules equivalent to the product brief's defaults.

    Scores are evidence weights combined by the consensus (noisy-OR): one rule alone lands in
    REVIEW (>= 0.3), two independent rules together reach BLOCK (>= 0.7). Every action hint is
    `review`, so by default no single rule blocks on its own; a tenant can raise one to `block`.
    """
    return [
        {"name": "velocity_count_1h", "description": f"more than {max_tx_per_hour} transactions in an hour",
         "condition": {"feature": "cust_count_1h", "op": ">", "value": max_tx_per_hour},
         "score": 0.5, "severity": "medium", "action": "review", "enabled": True},
        {"name": "velocity_amount_1h", "description": f"more than {max_amount_per_hour:g} spent in an hour",
         "condition": {"feature": "cust_amount_1h", "op": ">", "value": max_amount_per_hour},
         "score": 0.5, "severity": "medium", "action": "review", "enabled": True},
        {"name": "new_customer_high_amount",
         "description": f"new customer spending more than {new_customer_amount:g}",
         "condition": {"all": [{"feature": "is_new_customer", "op": "==", "value": 1},
                               {"feature": "amount_tenant", "op": ">", "value": new_customer_amount}]},
         "score": 0.45, "severity": "medium", "action": "review", "enabled": True},
        {"name": "shared_ip", "description": f"{ip_customers} or more customers on one IP in 24 h",
         "condition": {"feature": "ip_distinct_customers_24h", "op": ">=", "value": ip_customers},
         "score": 0.45, "severity": "medium", "action": "review", "enabled": True},
        {"name": "shared_device", "description": f"{device_customers} or more customers on one device in 24 h",
         "condition": {"feature": "device_distinct_customers_24h", "op": ">=", "value": device_customers},
         "score": 0.55, "severity": "high", "action": "review", "enabled": True},
        {"name": "large_amount", "description": f"amount over {large_amount:g}",
         "condition": {"feature": "amount_tenant", "op": ">", "value": large_amount},
         "score": 0.35, "severity": "low", "action": "review", "enabled": True},
    ]
