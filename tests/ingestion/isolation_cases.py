from __future__ import annotations

from typing import Any

from tests.isolation import IsolationCase


def _seed_event(b: Any) -> dict[str, Any]:
    from ingestion.services import events_ingest

    events_ingest(tenant=b.tenant, raw_events=[
        {"event_id": "b-secret-event", "type": "order", "timestamp": "2026-11-20T10:00:00Z", "amount": "1",
         "order_id": "b-secret-order", "customer_id": "b-secret-customer"},
        {"event_id": "b-bad-event", "type": "order", "timestamp": "2026-11-20T10:00:00Z", "order_id": "b-bad-order"},
    ], source="api")
    from ingestion.models import Quarantine

    return {"quarantine_id": Quarantine.objects.get(event_id="b-bad-event").pk,
            "markers": ["b-secret-event", "b-secret-order", "b-secret-customer", "b-bad-event", "b-bad-order"]}


def _quarantine_untouched(b: Any, ctx: dict[str, Any]) -> None:
    from ingestion.models import Quarantine

    assert Quarantine.objects.get(pk=ctx["quarantine_id"]).status == "open"


ISOLATION_CASES = [
    IsolationCase("list events", "get", lambda ctx: "/api/v1/events", _seed_event),
    IsolationCase("events by B's customer", "get", lambda ctx: "/api/v1/events?customer_id=b-secret-customer",
                  _seed_event),
    IsolationCase("list quarantine", "get", lambda ctx: "/api/v1/quarantine", _seed_event),
    IsolationCase("replay B's quarantine", "post", lambda ctx: f"/api/v1/quarantine/{ctx['quarantine_id']}/replay",
                  _seed_event, body={}, allowed_status=(404,), verify_b=_quarantine_untouched),
]
