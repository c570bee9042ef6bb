"""POST/GET /api/v1/uploads and the chunked, resumable upload worker."""

from __future__ import annotations

import gzip
import io
import json
from typing import Any

import pytest

from ingestion import uploads as uploads_module
from ingestion.models import Event, Quarantine, Upload
from ingestion.uploads import upload_run

URL = "/api/v1/uploads"
HEADER = "event_id,type,timestamp,amount,order_id,channel"


@pytest.fixture(autouse=True)
def media(settings, tmp_path):  # type: ignore[no-untyped-def]
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings


def _csv_rows(n: int, *, bad: set[int] = frozenset(), with_ids: bool = True) -> str:
    lines = [HEADER if with_ids else HEADER.replace("event_id,", "")]
    for row in range(1, n + 1):
        amount = "oops" if row in bad else f"{row}.50"
        cells = [f"csv-{row}"] if with_ids else []
        cells += ["order", f"2026-11-20T10:{row % 60:02d}:00Z", amount, f"o{row}", "Email"]
        lines.append(",".join(cells))
    return "\n".join(lines) + "\n"


def _post_file(client: Any, name: str, content: bytes) -> Any:
    handle = io.BytesIO(content)
    handle.name = name
    return client.post(URL, {"file": handle}, format="multipart")


def test_gzip_csv_multipart_upload_is_stored_then_ingested(tenant_a) -> None:  # type: ignore[no-untyped-def]
    client = tenant_a.client("ingest")
    response = _post_file(client, "orders.csv.gz", gzip.compress(_csv_rows(7, bad={3}).encode()))
    assert response.status_code == 202, response.content
    upload = Upload.objects.get(pk=response.json()["id"])
    assert (upload.status, upload.format, upload.compressed) == ("pending", "csv", True)
    assert upload.path.startswith(f"uploads/{tenant_a.schema}/")

    assert upload_run(upload.pk) == "done"
    detail = tenant_a.client("read").get(f"{URL}/{upload.pk}").json()
    assert (detail["status"], detail["rows_done"], detail["rows_total"]) == ("done", 7, 7)
    assert (detail["rows_accepted"], detail["rows_rejected"]) == (6, 1)
    assert [r["row"] for r in detail["rejected"]] == [3] and "amount" in detail["rejected"][0]["errors"]
    assert Event.objects.filter(event_id__startswith="csv-").count() == 6
    assert Event.objects.get(event_id="csv-1").channel == "email"


def test_ndjson_raw_body_upload_with_broken_line(tenant_a) -> None:  # type: ignore[no-untyped-def]
    lines = [json.dumps({"type": "click", "timestamp": "2026-11-20T10:00:00Z", "channel": "ads"}),
             "{broken", json.dumps({"type": "click", "timestamp": "2026-11-20T10:01:00Z"})]
    response = tenant_a.client("ingest").post(URL, "\n".join(lines).encode(),
                                              content_type="application/x-ndjson")
    assert response.status_code == 202, response.content
    upload_id = response.json()["id"]
    assert upload_run(upload_id) == "done"
    upload = Upload.objects.get(pk=upload_id)
    assert (upload.format, upload.rows_total, upload.rows_accepted, upload.rows_rejected) == ("ndjson", 3, 2, 1)
    # Events without ids get deterministic ones (upload id + row): a re-read row is a duplicate.
    assert sorted(Event.objects.values_list("event_id", flat=True)) == [f"u{upload_id}-1", f"u{upload_id}-3"]
    q = Quarantine.objects.get(reference=f"upload:{upload_id}")
    assert q.index == 2 and "malformed JSON" in json.dumps(q.errors)


def test_interrupted_upload_resumes_without_duplicates_or_losses(tenant_a, settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    settings.PULSE_UPLOAD_CHUNK_ROWS = 4
    response = tenant_a.client("ingest").post(f"{URL}?filename=big.csv",
                                              _csv_rows(10, bad={2, 7}, with_ids=False).encode(),
                                              content_type="text/csv")
    upload_id = response.json()["id"]

    # One chunk, then the worker "dies": status stays processing, rows_done says where it got.
    assert upload_run(upload_id, max_chunks=1) == "continue"
    assert Upload.objects.get(pk=upload_id).rows_done == 4
    Upload.objects.filter(pk=upload_id).update(status="processing")

    # The next worker dies in the middle of chunk 2, after writing but before committing.
    real_ingest = uploads_module.events_ingest

    def dying_ingest(**kwargs: Any) -> Any:
        progress = kwargs["before_commit"]

        def die(batch: Any) -> None:
            progress(batch)
            raise RuntimeError("worker killed")
        return real_ingest(**{**kwargs, "before_commit": die})

    monkeypatch.setattr(uploads_module, "events_ingest", dying_ingest)
    with pytest.raises(RuntimeError):
        upload_run(upload_id)
    upload = Upload.objects.get(pk=upload_id)
    assert (upload.status, upload.rows_done, upload.attempts) == ("pending", 4, 1)

    monkeypatch.setattr(uploads_module, "events_ingest", real_ingest)
    assert upload_run(upload_id) == "done"
    upload = Upload.objects.get(pk=upload_id)
    good_rows = [r for r in range(1, 11) if r not in (2, 7)]
    assert sorted(Event.objects.values_list("event_id", flat=True)) == sorted(f"u{upload_id}-{r}" for r in good_rows)
    assert sorted(Quarantine.objects.filter(reference=f"upload:{upload_id}").values_list("index", flat=True)) == [2, 7]
    assert (upload.rows_total, upload.rows_accepted, upload.rows_rejected, upload.rows_duplicates) == (10, 8, 2, 0)


def test_time_slices_hand_over_to_a_new_task(tenant_a, settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    settings.PULSE_UPLOAD_CHUNK_ROWS = 3
    settings.PULSE_UPLOAD_SLICE_SECONDS = 0.0000001
    from ingestion import tasks

    upload = uploads_module.upload_store(stream=io.BytesIO(_csv_rows(7).encode()), filename="x.csv")
    queued: list[int] = []
    monkeypatch.setattr(tasks.upload_process, "delay", lambda upload_id: queued.append(upload_id))
    assert tasks.upload_process(upload.pk) == "continue" and queued == [upload.pk]
    while tasks.upload_process(upload.pk) == "continue":
        pass
    assert Upload.objects.get(pk=upload.pk).rows_accepted == 7


@pytest.mark.parametrize("name, content, message", [
    ("bad.csv", b"evnt_id,type\n1,order\n", "Unknown CSV columns"),
    ("bad.csv.gz", gzip.compress(_csv_rows(3).encode())[:-12], "Corrupt or truncated"),
    ("empty.csv", b"event_id,type,timestamp\n", "no data rows"),
])
def test_bad_file_fails_with_a_clear_message(tenant_a, name, content, message) -> None:  # type: ignore[no-untyped-def]
    upload_id = _post_file(tenant_a.client("ingest"), name, content).json()["id"]
    assert upload_run(upload_id) == "failed"
    detail = tenant_a.client("read").get(f"{URL}/{upload_id}").json()
    assert detail["status"] == "failed" and message in detail["error"], detail["error"]


def test_refused_uploads_answer_clear_4xx(tenant_a, settings) -> None:  # type: ignore[no-untyped-def]
    client = tenant_a.client("ingest")
    unknown = _post_file(client, "data.xlsx", b"PK\x03\x04")
    assert unknown.status_code == 415 and unknown.json()["error"] == "unsupported_media_type"
    assert _post_file(client, "empty.csv", b"").status_code == 400
    assert client.post(URL, {"other": "x"}, format="multipart").status_code == 400
    settings.PULSE_UPLOAD_MAX_BYTES = 10
    assert _post_file(client, "big.csv", _csv_rows(3).encode()).status_code == 413
    assert tenant_a.client("read").post(URL, b"a", content_type="text/csv").status_code == 403
    assert not any((settings.MEDIA_ROOT / "uploads" / tenant_a.schema).glob(".incoming-*"))


def test_rejected_rows_are_paginated(tenant_a) -> None:  # type: ignore[no-untyped-def]
    upload_id = _post_file(tenant_a.client("ingest"), "r.csv", _csv_rows(6, bad={1, 2, 4, 6}).encode()).json()["id"]
    upload_run(upload_id)
    client = tenant_a.client("read")
    first = client.get(f"{URL}/{upload_id}?rejected_limit=3").json()
    assert [r["row"] for r in first["rejected"]] == [1, 2, 4] and first["rejected_next_after"] == 4
    rest = client.get(f"{URL}/{upload_id}?rejected_after=4").json()
    assert [r["row"] for r in rest["rejected"]] == [6] and rest["rejected_next_after"] is None
    listing = client.get(URL).json()
    assert listing["results"][0]["id"] == upload_id
