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


def _seed_uploads_orders_imports(b: Any) -> dict[str, Any]:
    from django.utils import timezone

    from ingestion.models import ImportSource, OrderStatusChange, Quarantine, Upload

    upload = Upload.objects.create(filename="b-secret-file.csv", format="csv", path="uploads/b/x.csv",
                                   sha256="b-secret-sha")
    Quarantine.objects.create(source="upload", reference=f"upload:{upload.pk}", index=1,
                              raw={"order_id": "b-secret-row"}, errors={"amount": ["b-secret-reason"]})
    OrderStatusChange.objects.create(order_id="b-secret-order-7", status="shipped", occurred_at=timezone.now(),
                                     event_id="b-secret-status-event", event_type="order_status", batch_id=0)
    source = ImportSource.objects.create(name="b-secret-source", kind="folder", location="b-secret-folder")
    return {"upload_id": upload.pk, "source_id": source.pk,
            "markers": ["b-secret-file", "b-secret-sha", "b-secret-row", "b-secret-reason", "b-secret-order-7",
                        "b-secret-status-event", "b-secret-source", "b-secret-folder"]}


def _import_source_untouched(b: Any, ctx: dict[str, Any]) -> None:
    from ingestion.models import ImportSource

    source = ImportSource.objects.get(pk=ctx["source_id"])
    assert (source.name, source.enabled) == ("b-secret-source", True)


ISOLATION_CASES += [
    IsolationCase("list uploads", "get", lambda ctx: "/api/v1/uploads", _seed_uploads_orders_imports),
    IsolationCase("B's upload", "get", lambda ctx: f"/api/v1/uploads/{ctx['upload_id']}",
                  _seed_uploads_orders_imports, allowed_status=(404,)),
    IsolationCase("B's order tracking", "get", lambda ctx: "/api/v1/orders/b-secret-order-7/tracking",
                  _seed_uploads_orders_imports, allowed_status=(404,)),
    IsolationCase("list import sources", "get", lambda ctx: "/api/v1/import-sources", _seed_uploads_orders_imports),
    IsolationCase("B's import source", "get", lambda ctx: f"/api/v1/import-sources/{ctx['source_id']}",
                  _seed_uploads_orders_imports, allowed_status=(404,)),
    IsolationCase("change B's import source", "patch", lambda ctx: f"/api/v1/import-sources/{ctx['source_id']}",
                  _seed_uploads_orders_imports, body={"name": "hijacked", "enabled": False}, allowed_status=(404,),
                  verify_b=_import_source_untouched),
    IsolationCase("delete B's import source", "delete", lambda ctx: f"/api/v1/import-sources/{ctx['source_id']}",
                  _seed_uploads_orders_imports, allowed_status=(404,), verify_b=_import_source_untouched),
]
