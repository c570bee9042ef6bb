"""Redis state lost -> rebuilt from PostgreSQL: same features as if nothing had happened."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.core.management import call_command

from scoring.features import FEATURE_NAMES
from scoring.pipeline import score_transactions, state_ready
from tests.scoring.fraud_helpers import card_testing, ingest_and_consume, normal_payments, payment, recent


@pytest.fixture(autouse=True)
def _clean_redis(redis_client):  # type: ignore[no-untyped-def]
    yield
    redis_client.flushdb()


def _history(tag: str):  # type: ignore[no-untyped-def]
    start = recent(30)
    events = normal_payments(tag, 30, start) + card_testing(tag, 8, start + timedelta(hours=20))
    events += [payment(f"{tag}-ret{i}", start + timedelta(hours=10 + i), customer=f"{tag}-cust{i}", amount=500,
                       ip=f"10.1.0.{i}", device=f"{tag}-dev{i}") for i in range(3)]
    later = [payment(f"{tag}-late{i}", recent(2) + timedelta(minutes=i), customer=f"{tag}-cust{i % 4}", amount=80,
                     ip="10.1.0.1", device=f"{tag}-dev{i % 3}", card=f"{tag}-card{i}") for i in range(12)]
    later += card_testing(f"{tag}x", 4, recent(1))
    return sorted(events, key=lambda e: e["timestamp"]), later


def _frame(tenant, events):  # type: ignore[no-untyped-def]
    from ingestion.schemas import validate_batch

    valid = validate_batch(events, tenant_tz="UTC", tenant_currency="USD",
                           now=recent(0)).valid
    return score_transactions(tenant=tenant, events=[e for _, e in valid]).frame


def test_features_after_a_flush_and_automatic_rebuild_equal_the_features_without(tenant_a, redis_client):
    history, later = _history("rb")
    ingest_and_consume(tenant_a.tenant, history)
    assert state_ready(redis_client, tenant_a.tenant)
    before = _frame(tenant_a.tenant, later)
    redis_client.flushdb()  # Redis lost everything (the later events were only enriched, never stored)
    assert not state_ready(redis_client, tenant_a.tenant)
    after = _frame(tenant_a.tenant, later)  # the marker is missing: rebuilt from PostgreSQL first
    assert state_ready(redis_client, tenant_a.tenant)
    for name in FEATURE_NAMES:
        np.testing.assert_array_equal(before[name], after[name], err_msg=name)


def test_the_command_rebuilds_and_a_consumer_after_a_flush_sees_the_history(tenant_a, redis_client):
    from scoring.models import Anomaly

    history, _ = _history("cmd")
    ingest_and_consume(tenant_a.tenant, history)
    redis_client.flushdb()
    call_command("rebuild_scoring_state", "--tenant", tenant_a.slug)
    assert state_ready(redis_client, tenant_a.tenant)
    # The 9th attempt of the burst after the rebuild: velocity counts the 8 stored ones.
    nine = card_testing("cmd", 9, recent(30) + timedelta(hours=20))[-1]
    ingest_and_consume(tenant_a.tenant, [nine])
    anomaly = Anomaly.objects.get(event_ids__0=nine["event_id"])
    velocity = next(r for r in anomaly.reasons if r["detector"] == "rule:velocity_count_1h")
    assert velocity["value"] == 9
    # ...and its anomaly lists the 8 earlier attempts of the hour, read from the rebuilt state.
    assert anomaly.event_ids == [nine["event_id"]] + [f"cmd-ct{i}" for i in range(7, -1, -1)]


def test_return_rate_after_a_flush_is_rebuilt_from_postgresql(tenant_a, redis_client):
    from tests.scoring.fraud_helpers import purchase, returned, serial_returner

    buys, rets = serial_returner("rr", recent(60))
    ingest_and_consume(tenant_a.tenant, sorted(buys, key=lambda e: e["timestamp"]))
    ingest_and_consume(tenant_a.tenant, rets[:3])  # returned orders: 1, 1, 2 of 5
    later = [returned("rr", 3, 0, recent(1), customer="rr-cust")] + purchase("rr", 9, recent(1), customer="rr-cust")
    before = _frame(tenant_a.tenant, later)
    assert before["cust_returned_orders_window"].tolist() == [3, 3, 3]
    assert before["cust_orders_window"].tolist() == [5, 6, 6]
    assert before["cust_returns_window"].tolist() == [4, 4, 4]
    redis_client.flushdb()  # Redis lost everything
    after = _frame(tenant_a.tenant, later)  # rebuilt from the stored orders, payments and returns first
    for name in ("cust_orders_window", "cust_returned_orders_window", "cust_returns_window", "cust_return_rate",
                 "cust_history_n", "amount_robust_z"):
        np.testing.assert_array_equal(before[name], after[name], err_msg=name)


def test_a_tenant_created_again_under_the_same_slug_starts_with_no_scoring_state(committed_tenant, redis_client):
    """Same slug -> same schema name -> same Redis prefix: the state of the deleted tenant (its
    customers' velocity and history) must not score the new one's payments."""
    from django.db import connection

    from scoring.enrich import tenant_prefix

    tenant, _ = committed_tenant("reborn")
    pattern = tenant_prefix(tenant.schema_name).replace("[", "\\[") + "*"
    connection.set_tenant(tenant)
    _frame(tenant, [payment("rb-1", recent(1), customer="rb-cust", amount=40)])
    assert list(redis_client.scan_iter(match=pattern))
    connection.set_schema_to_public()
    tenant, _ = committed_tenant("reborn")  # the first one is dropped: same slug
    assert not list(redis_client.scan_iter(match=pattern))
    connection.set_tenant(tenant)
    _frame(tenant, [payment("rb-2", recent(1), customer="rb-cust", amount=40)])
    connection.set_schema_to_public()
    tenant.delete(force_drop=True)
    assert not list(redis_client.scan_iter(match=pattern))
