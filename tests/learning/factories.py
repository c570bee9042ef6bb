"""Synthetic scored-event logs and labels for the learning tests (written straight to the tables
the scoring path fills, so no Redis or enrichment is needed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from learning.log import LOG_FEATURES

NOW = datetime(2024, 10, 1, tzinfo=UTC)
STORES = ["web", "app", "partner"]


def features(rng: np.random.Generator, n: int, shift: float = 0.0) -> np.ndarray:
    """Plausible behaviour features: counts near 1, amounts log-normal, flags rare."""
    x = np.zeros((n, len(LOG_FEATURES)))
    for j, name in enumerate(LOG_FEATURES):
        if "count" in name or "distinct" in name or name == "cust_history_n":
            x[:, j] = 1 + rng.poisson(0.3 + shift, n)
        elif "amount" in name and name != "amount_robust_z":
            x[:, j] = rng.lognormal(3.5 + shift, 0.6, n)
        elif name == "amount_robust_z":
            x[:, j] = rng.normal(shift, 1.0, n)
        elif name == "cust_tenure_s":
            x[:, j] = rng.exponential(30 * 86_400, n)
        elif name == "cust_return_rate":
            x[:, j] = rng.beta(1, 10, n)
        else:  # streaks and 0/1 flags
            x[:, j] = (rng.random(n) < 0.03 + 0.3 * shift).astype(float)
    return x


def scored_log(*, n: int = 3000, days: float = 28, seed: int = 0, end: datetime = NOW, shift: float = 0.0,
               bad_store: str | None = "partner", fraud_share: float = 0.35, prefix: str = "ev",
               model_version: int = 0) -> dict[str, Any]:
    """Write n ScoredEvent rows evenly over `days` before `end`. Payments of `bad_store` are fraud with
    probability `fraud_share` and otherwise look exactly like the others. Returns ids and truth."""
    from learning.models import ScoredEvent

    rng = np.random.default_rng(seed)
    x = features(rng, n, shift)
    ts = [end - timedelta(days=days) + timedelta(seconds=float(s)) for s in np.sort(rng.uniform(0, days * 86_400, n))]
    store = rng.choice(np.array(STORES, dtype=object), n, p=[0.6, 0.3, 0.1])
    fraud = (store == bad_store) & (rng.random(n) < fraud_share) if bad_store else np.zeros(n, bool)
    risk = np.clip(rng.beta(1.2, 12, n), 0, 1)  # the champion cannot see the store: risk is unrelated
    ids = [f"{prefix}-{seed}-{i}" for i in range(n)]
    ScoredEvent.objects.bulk_create([
        ScoredEvent(event_id=ids[i], occurred_at=ts[i], model_version=model_version, risk=float(risk[i]),
                    decision="REVIEW" if risk[i] >= 0.3 else "ALLOW", detectors={}, features=x[i].tolist(),
                    context={"store_id": str(store[i]), "channel": "web", "payment_method": "card", "country": "FR",
                             "status": "succeeded"})
        for i in range(n)], batch_size=2000)
    return {"ids": ids, "ts": ts, "fraud": fraud, "risk": risk, "store": store}


def chargebacks(log: dict[str, Any], *, delay: timedelta = timedelta(days=7)) -> list[dict[str, Any]]:
    """The chargeback feed of a log: one fraud label per fraudulent event, known `delay` later."""
    return [{"event_id": log["ids"][i], "label": "fraud", "known_at": log["ts"][i] + delay}
            for i in np.flatnonzero(log["fraud"])]


def set_learning_config(tenant: Any, **sections: dict[str, Any]) -> None:
    from tenants.models import Tenant

    config = dict(tenant.config or {})
    config["learning"] = {**config.get("learning", {}), **sections}
    tenant.config = config
    Tenant.objects.filter(pk=tenant.pk).update(config=config)
