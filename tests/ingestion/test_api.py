"""POST/GET /api/v1/events and the quarantine, against the real tenant schema."""

from __future__ import annotations

import gzip
import json

from ingestion.models import Event, EventBatch, EventKey, Quarantine

URL = "/api/v1/events"


def _order(event_id: str, ts: str = "2026-11-20T10:00:00Z", **extra: object) -> dict[str, object]:
    return {"event_id": event_id, "type": "order", "timestamp": ts, "amount": "19.99", "order_id": f"o-{event_id}",
            **extra}


def test_mixed_batch_keeps_valid_and_quarantines_invalid_with_indexes(tenant_a) -> None:  # type: ignore[no-untyped-def]
    body = [_order("m1"), {"type": "order", "timestamp": "nope"}, _order("m2", channel="Email"),
            {"type": "bogus", "timestamp": "2026-11-20T10:00:00Z"}, _order("m3", ammount=3)]
    response = tenant_a.client("ingest").post(URL, body, format="json")
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["accepted"] == 2 and data["duplicates"] == 0
    assert [r["index"] for r in data["rejected"]] == [1, 3, 4]
    assert "timestamp" in data["rejected"][0]["errors"] and "type" in data["rejected"][1]["errors"]
    assert any("ammount" in key or "ammount" in " ".join(msgs) for key, msgs in data["rejected"][2]["errors"].items())
    assert sorted(Event.objects.values_list("event_id", flat=True)) == ["m1", "m2"]
    assert Event.objects.get(event_id="m2").channel == "email"
    quarantined = Quarantine.objects.order_by("index")
    assert [q.index for q in quarantined] == [1, 3, 4]
    assert quarantined[0].raw == {"type": "order", "timestamp": "nope"}


def test_duplicates_are_counted_and_not_stored_twice(tenant_a) -> None:  # type: ignore[no-untyped-def]
    client = tenant_a.client("ingest")
    assert client.post(URL, [_order("d1"), _order("d2")], format="json").json()["accepted"] == 2
    again = client.post(URL, {"events": [_order("d1"), _order("d3"), _order("d3")]}, format="json").json()
    assert (again["accepted"], again["duplicates"]) == (1, 2)
    assert Event.objects.filter(event_id__in=["d1", "d2", "d3"]).count() == 3
    assert EventKey.objects.filter(event_id__in=["d1", "d2", "d3"]).count() == 3


def test_single_object_and_ndjson_with_a_broken_line(tenant_a) -> None:  # type: ignore[no-untyped-def]
    client = tenant_a.client("ingest")
    assert client.post(URL, _order("s1"), format="json").json()["accepted"] == 1
    lines = [json.dumps(_order("n1")), "{not json", json.dumps(_order("n2"))]
    response = client.post(URL, "\n".join(lines), content_type="application/x-ndjson")
    data = response.json()
    assert data["accepted"] == 2 and [r["index"] for r in data["rejected"]] == [1]


def test_client_errors_are_clear_4xx_json(tenant_a) -> None:  # type: ignore[no-untyped-def]
    client = tenant_a.client("ingest")
    bad_json = client.post(URL, "[{", content_type="application/json")
    assert bad_json.status_code == 400 and bad_json.json()["error"] == "malformed"
    wrong_type = client.post(URL, "a,b", content_type="text/csv")
    assert wrong_type.status_code == 415
    too_many = client.post(URL, [{"type": "click", "timestamp": "2026-11-20T10:00:00Z"}] * 10_001, format="json")
    assert too_many.status_code == 413
    all_invalid = client.post(URL, [{"type": "order"}], format="json")
    assert all_invalid.status_code == 400 and all_invalid.json()["rejected"][0]["index"] == 0
    gz = client.post(URL, gzip.compress(b"[]"), content_type="application/json")
    assert gz.status_code == 400


def test_body_over_the_byte_limit_is_413(tenant_a, settings) -> None:  # type: ignore[no-untyped-def]
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = tenant_a.client("ingest").post(URL, [_order(f"big{i}") for i in range(50)], format="json")
    assert response.status_code == 413 and response.json()["error"] == "too_large"


def test_read_key_cannot_ingest_and_ingest_key_cannot_read_config(tenant_a) -> None:  # type: ignore[no-untyped-def]
    assert tenant_a.client("read").post(URL, _order("r1"), format="json").status_code == 403
    assert tenant_a.client("read").get(URL).status_code == 200


def test_backfill_of_last_year_creates_partitions(tenant_a) -> None:  # type: ignore[no-untyped-def]
    body = [_order("old1", "2025-01-15T08:00:00Z"), _order("old2", "2024-12-31T23:59:59+00:00")]
    assert tenant_a.client("ingest").post(URL, body, format="json").json()["accepted"] == 2
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM events_default")
        assert cursor.fetchone()[0] == 0  # every row landed in its monthly partition
        cursor.execute("SELECT to_regclass('events_p2025_01'), to_regclass('events_p2024_12')")
        assert all(cursor.fetchone())


def test_list_filters_and_cursor_pagination(tenant_a) -> None:  # type: ignore[no-untyped-def]
    client = tenant_a.client("ingest")
    body = [_order(f"p{i}", f"2026-11-20T10:{i:02d}:00Z", channel="email" if i % 2 else "social") for i in range(7)]
    client.post(URL, body, format="json")
    reader = tenant_a.client("read")
    seen: list[str] = []
    url = f"{URL}?channel=email&limit=2&from=2026-11-20T10:00:00Z"
    while url:
        page = reader.get(url).json()
        seen += [e["event_id"] for e in page["results"]]
        url = page["next"]
    assert seen == ["p5", "p3", "p1"]
    assert reader.get(f"{URL}?from=yesterday").status_code == 400
    assert reader.get(f"{URL}?to=2026-11-20T10:02:00Z&type=ORDER").json()["results"][0]["event_id"] == "p2"


def test_replay_of_a_quarantined_event_after_correction(tenant_a) -> None:  # type: ignore[no-untyped-def]
    client = tenant_a.client("ingest")
    client.post(URL, [{"event_id": "q1", "type": "order", "timestamp": "2026-11-20T10:00:00Z", "order_id": "o"}],
                format="json")
    item = Quarantine.objects.get(event_id="q1")
    still_bad = client.post(f"/api/v1/quarantine/{item.pk}/replay", {}, format="json")
    assert still_bad.status_code == 400
    fixed = {**item.raw, "amount": "5.00"}
    ok = client.post(f"/api/v1/quarantine/{item.pk}/replay", {"event": fixed}, format="json")
    assert ok.status_code == 200 and ok.json()["accepted"] == 1
    item.refresh_from_db()
    assert item.status == "replayed" and Event.objects.filter(event_id="q1").exists()
    assert Quarantine.objects.filter(status="open", event_id="q1").count() == 0
    assert client.post(f"/api/v1/quarantine/{item.pk}/replay", {}, format="json").status_code == 409
    listed = tenant_a.client("read").get("/api/v1/quarantine?status=replayed").json()["results"]
    assert [q["id"] for q in listed] == [item.pk]


def test_accepted_batch_is_recorded_in_the_outbox(tenant_a, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        tenant_a.client("ingest").post(URL, [_order("ob1"), _order("ob2")], format="json")
    batch = EventBatch.objects.latest("pk")
    assert (batch.accepted, batch.status) == (2, "pending")
    assert len(callbacks) == 1  # the hand-off to scoring waits for the commit
