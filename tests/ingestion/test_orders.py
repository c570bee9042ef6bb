"""Order timelines: built in bulk per batch, ordered by data time, served by /orders/{id}/tracking."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from ingestion.models import OrderStatusChange
from ingestion.services import events_ingest
from ingestion.tasks import batch_run

CONSUMER = "ingestion.orders.orders_consume"


@pytest.fixture
def consumers(settings):  # type: ignore[no-untyped-def]
    settings.PULSE_BATCH_CONSUMERS = [CONSUMER]
    return settings


def _ingest(tenant: Any, events: list[dict[str, Any]]) -> int:
    result = events_ingest(tenant=tenant, raw_events=events, source="api")
    assert batch_run(result.batch_id) == "done"
    return result.batch_id


def _status(event_id: str, order_id: str, status: str, ts: str, **extra: Any) -> dict[str, Any]:
    return {"event_id": event_id, "type": "order_status", "order_id": order_id, "status": status,
            "timestamp": ts, **extra}


def test_late_status_is_slotted_in_by_data_time(tenant_a, consumers) -> None:  # type: ignore[no-untyped-def]
    _ingest(tenant_a.tenant, [
        {"event_id": "o1-placed", "type": "order", "order_id": "o1", "amount": "20", "customer_id": "c9",
         "timestamp": "2026-11-20T10:00:00Z"},
        _status("o1-delivered", "o1", "Delivered", "2026-11-20T12:00:00Z"),
        _status("o2-confirmed", "o2", "confirmed", "2026-11-20T10:00:00Z"),
        {"event_id": "click", "type": "click", "timestamp": "2026-11-20T10:00:00Z"},
    ])
    _ingest(tenant_a.tenant, [_status("o1-shipped", "o1", "in transit", "2026-11-20T11:00:00Z")])

    timeline = list(OrderStatusChange.objects.filter(order_id="o1").order_by("occurred_at"))
    assert [(c.status, c.previous_status) for c in timeline] == [
        ("placed", ""), ("shipped", "placed"), ("delivered", "shipped")]

    data = tenant_a.client("read").get("/api/v1/orders/o1/tracking").json()
    assert data["status"] == "delivered" and data["customer_id"] == "c9"
    assert [step["status"] for step in data["timeline"]] == ["placed", "shipped", "delivered"]
    assert data["timeline"][2]["previous_status"] == "shipped"
    assert OrderStatusChange.objects.count() == 4


def test_unknown_order_is_404_json(tenant_a, consumers) -> None:  # type: ignore[no-untyped-def]
    response = tenant_a.client("read").get("/api/v1/orders/nope/tracking")
    assert response.status_code == 404 and response.json()["error"] == "not_found"


def test_replayed_batch_does_not_duplicate_steps(tenant_a, consumers) -> None:  # type: ignore[no-untyped-def]
    from ingestion.models import EventBatch
    from ingestion.orders import orders_consume
    from ingestion.storage import batch_events_load

    batch_id = _ingest(tenant_a.tenant, [_status("r1", "o5", "pending", "2026-11-20T10:00:00Z")])
    orders_consume(batch=EventBatch.objects.get(pk=batch_id), events=batch_events_load(batch_id))
    assert OrderStatusChange.objects.filter(order_id="o5").count() == 1


def test_alerts_hook_gets_changes_after_commit(tenant_a, consumers, monkeypatch,
                                               django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    received: list[list[dict[str, Any]]] = []
    fake = types.ModuleType("alerts.services")
    fake.order_status_notify = lambda *, changes: received.append(changes)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "alerts.services", fake)
    import alerts

    monkeypatch.setattr(alerts, "services", fake, raising=False)
    with django_capture_on_commit_callbacks(execute=True):
        _ingest(tenant_a.tenant, [_status("n1", "o7", "shipped", "2026-11-20T10:00:00Z", customer_id="c1")])
    changes = [c for batch in received for c in batch]
    assert [(c["order_id"], c["status"], c["customer_id"]) for c in changes] == [("o7", "shipped", "c1")]


def test_missing_alerts_hook_is_skipped(tenant_a, consumers, monkeypatch,
                                        django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    fake = types.ModuleType("alerts.services")  # no order_status_notify
    monkeypatch.setitem(sys.modules, "alerts.services", fake)
    import alerts

    monkeypatch.setattr(alerts, "services", fake, raising=False)
    with django_capture_on_commit_callbacks(execute=True):
        _ingest(tenant_a.tenant, [_status("m1", "o8", "shipped", "2026-11-20T10:00:00Z")])
    assert OrderStatusChange.objects.filter(order_id="o8").exists()
