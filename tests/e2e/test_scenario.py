"""End to end on the simulator's `e2e` scenario (a clean week, then an outage, a campaign break, a flash sale and
four fraud patterns): events go through the real ingestion, rollups, transaction scoring and KPI
evaluation, anomalies are read back through GET /api/v1/anomalies and matched to the ground truth."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from rest_framework.test import APIClient

from ingestion.services import events_ingest
from ingestion.tasks import batch_run
from simulator.config import load_config
from simulator.evaluate import evaluate
from simulator.generator import generate

SLUG = "e2e-check"


@pytest.fixture
def scenario_tenant(committed_tenant, monkeypatch):  # type: ignore[no-untyped-def]
    # Batches are processed in this process (the same task body a worker runs), not by a worker
    # that another test may have started, so the test controls when each batch is done.
    monkeypatch.setattr("ingestion.services._hand_over", lambda batch_id: None)
    return committed_tenant(SLUG, name="E2E check", timezone_name="Europe/Paris", currency="EUR")


def _anomalies(key: str) -> list[dict[str, Any]]:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    url: str | None = "/api/v1/anomalies?limit=500"
    found: list[dict[str, Any]] = []
    while url:
        page = client.get(url)
        assert page.status_code == 200, page.content[:300]
        body = page.json()
        found += body["results"]
        url = body["next"]
    return found


@pytest.mark.slow
def test_injected_incidents_and_fraud_are_found(scenario_tenant) -> None:  # type: ignore[no-untyped-def]
    from monitoring.services import kpi_evaluate, stock_check

    tenant, key = scenario_tenant
    started = time.monotonic()
    scenario = generate(load_config("e2e"))
    connection.set_tenant(tenant)
    sent = accepted = 0
    for batch in scenario.events.batches(2000):
        result = events_ingest(tenant=tenant, raw_events=batch, source="api")
        assert not result.rejected, result.rejected[:3]
        sent, accepted = sent + len(batch), accepted + result.accepted
        assert batch_run(result.batch_id) == "done"
    assert accepted == sent == len(scenario.events)
    closed = scenario.end + timedelta(hours=1)
    counts = kpi_evaluate(tenant=tenant, now=closed)
    stock_check(tenant=tenant, now=closed)

    anomalies = _anomalies(key)
    result = evaluate(scenario.labels, anomalies, truth=scenario.truth, kpi_buckets=counts["buckets"])
    recall = {name: r.recall for name, r in result.per_type.items()}
    print(f"\ne2e scenario: {sent} events, {len(anomalies)} anomalies, {counts['buckets']} KPI buckets, "
          f"{time.monotonic() - started:.1f}s\nrecall {recall}\nprecision {result.precision}\n"
          f"false alarms per 1,000 {result.false_alarms_per_1000}\nevent level {result.event_level}")

    # Every injected incident and fraud pattern is found...
    for kind in ("card_testing", "ip_ring", "high_amount_new_customer", "account_takeover",
                 "checkout_outage", "campaign_break", "flash_sale"):
        assert recall[kind] == 1.0, f"{kind} missed"
    # ...most fraudulent payments are flagged, few legitimate ones are...
    assert result.event_level["recall"] >= 0.8 and result.event_level["precision"] >= 0.8
    # ...and the KPI detectors do not flood a week of ordinary traffic (a regression guard, not a target).
    assert result.false_alarms_per_1000["kpi"] < 10
