"""Small synthetic payment streams for tests, benchmarks and the cold-start model.

Independent of `simulator/` on purpose (that one is the accuracy yardstick; this one only has to
exercise the code paths). Legit customers have their own log-normal amount level, a home IP,
device and country; a few fraud patterns are injected with a label so tests can check that the
features move the right way.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

START = datetime(2024, 5, 6, tzinfo=UTC)  # a Monday


def payments(
    n: int,
    *,
    seed: int = 0,
    n_customers: int | None = None,
    hours: float = 48.0,
    fraud_rate: float = 0.0,
    start: datetime = START,
) -> list[dict[str, Any]]:
    """`n` payment events sorted by time; fraud rows carry `attributes.label = "fraud"`."""
    rng = np.random.default_rng(seed)
    n_customers = n_customers or max(10, n // 8)
    level = rng.normal(np.log(60.0), 0.8, n_customers)  # each customer's usual amount (log)
    home_country = rng.choice(np.array(["US", "GB", "DE", "FR", "ES"]), n_customers)
    cust = rng.integers(0, n_customers, n)
    offsets = np.sort(rng.uniform(0, hours * 3600, n))
    amounts = np.round(np.exp(level[cust] + rng.normal(0, 0.3, n)), 2)
    failed = rng.random(n) < 0.03
    events: list[dict[str, Any]] = []
    for i in range(n):
        c = int(cust[i])
        events.append({
            "event_id": f"s{seed}-{i}",
            "type": "payment",
            "timestamp": start + timedelta(seconds=float(offsets[i])),
            "customer_id": f"c{c}",
            "ip": f"10.{c // 250}.{c % 250}.1",
            "device_id": f"dev{c}",
            "payment_method": f"card{c}",
            "country": str(home_country[c]),
            "amount": float(amounts[i]),
            "currency": "USD",
            "status": "failed" if failed[i] else "succeeded",
            "channel": "web",
            "attributes": {"label": "legit"},
        })
    n_fraud = int(round(n * fraud_rate))
    if n_fraud:
        events = _inject_fraud(events, n_fraud, rng, start, hours)
    return events


def _inject_fraud(events: list[dict[str, Any]], n_fraud: int, rng: np.random.Generator,
                  start: datetime, hours: float) -> list[dict[str, Any]]:
    """Card-testing bursts (one customer, many cards, small failing amounts) and big new customers
    on a shared IP/device ring."""
    out = list(events)
    k = 0
    burst = 0
    while k < n_fraud:
        t0 = start + timedelta(seconds=float(rng.uniform(0, hours * 3600 - 3600)))
        if burst % 2 == 0:  # card testing
            size = min(n_fraud - k, int(rng.integers(6, 12)))
            for j in range(size):
                out.append({
                    "event_id": f"f{burst}-{j}", "type": "payment",
                    "timestamp": t0 + timedelta(seconds=30 * j), "customer_id": f"ct{burst}",
                    "ip": f"203.0.{burst % 250}.9", "device_id": f"ctdev{burst}",
                    "payment_method": f"stolen{burst}-{j}", "country": "US",
                    "amount": float(np.round(rng.uniform(1, 5), 2)), "currency": "USD",
                    "status": "failed" if j < size - 1 else "succeeded", "channel": "web",
                    "attributes": {"label": "fraud", "pattern": "card_testing"},
                })
        else:  # ring: several new customers on one IP and device, large amounts
            size = min(n_fraud - k, int(rng.integers(3, 6)))
            for j in range(size):
                out.append({
                    "event_id": f"f{burst}-{j}", "type": "payment",
                    "timestamp": t0 + timedelta(minutes=5 * j), "customer_id": f"ring{burst}-{j}",
                    "ip": f"198.51.{burst % 250}.7", "device_id": f"ringdev{burst}",
                    "payment_method": f"ringcard{burst}-{j}", "country": "NG",
                    "amount": float(np.round(rng.uniform(400, 900), 2)), "currency": "USD",
                    "status": "succeeded", "channel": "web",
                    "attributes": {"label": "fraud", "pattern": "ring"},
                })
        k += size
        burst += 1
    out.sort(key=lambda e: e["timestamp"])
    return out


def labels(events: list[dict[str, Any]]) -> np.ndarray:
    return np.array([e.get("attributes", {}).get("label") == "fraud" for e in events])
