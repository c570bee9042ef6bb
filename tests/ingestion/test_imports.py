"""Scheduled imports from a tenant folder and from an HTTP listing: each file is imported once."""

from __future__ import annotations

import functools
import gzip
import http.server
import os
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from ingestion.imports import import_source_poll, import_sources_poll
from ingestion.models import Event, ImportedFile, ImportSource, Upload
from ingestion.uploads import upload_run

URL = "/api/v1/import-sources"


@pytest.fixture
def roots(settings, tmp_path, tenant_a):  # type: ignore[no-untyped-def]
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.PULSE_IMPORT_ROOT = tmp_path / "imports"
    settings.PULSE_IMPORT_SETTLE_SECONDS = 0
    drop = tmp_path / "imports" / tenant_a.schema / "drop"
    drop.mkdir(parents=True)
    return drop


def _csv(prefix: str, n: int) -> bytes:
    rows = ["event_id,type,timestamp,channel"]
    rows += [f"{prefix}-{i},click,2026-11-20T10:{i:02d}:00Z,web" for i in range(n)]
    return ("\n".join(rows) + "\n").encode()


def _old(path: Path, seconds_ago: float = 120) -> None:
    stamp = time.time() - seconds_ago
    os.utime(path, (stamp, stamp))


def test_folder_files_are_imported_once(tenant_a, roots) -> None:  # type: ignore[no-untyped-def]
    (roots / "a.csv").write_bytes(_csv("a", 3))
    (roots / "b.csv.gz").write_bytes(gzip.compress(_csv("b", 2)))
    (roots / "notes.txt").write_text("not data")
    source = ImportSource.objects.create(name="drop", kind="folder", location="drop", pattern="*.csv*")

    uploads = import_source_poll(source=source)
    assert sorted(u.filename for u in uploads) == ["a.csv", "b.csv.gz"]
    assert all(u.source == "import" and u.import_source_id == source.pk for u in uploads)
    for upload in uploads:
        assert upload_run(upload.pk) == "done"
    assert Event.objects.filter(event_id__regex=r"^[ab]-").count() == 5

    assert import_source_poll(source=source) == []  # same names, same size and mtime: not even read
    os.utime(roots / "a.csv")  # touched, same content: recorded, not ingested again
    assert import_source_poll(source=source) == []
    assert ImportedFile.objects.filter(source=source, name="a.csv").count() == 2
    (roots / "a.csv").write_bytes(_csv("a2", 4))  # new content under the same name: imported
    assert [u.filename for u in import_source_poll(source=source)] == ["a.csv"]
    source.refresh_from_db()
    assert source.files_imported == 3 and source.last_error == ""


def test_files_still_being_written_wait_for_the_next_poll(tenant_a, roots, settings) -> None:  # type: ignore[no-untyped-def]
    settings.PULSE_IMPORT_SETTLE_SECONDS = 30
    (roots / "fresh.csv").write_bytes(_csv("f", 1))
    source = ImportSource.objects.create(name="drop", kind="folder", location="drop")
    assert import_source_poll(source=source) == []
    _old(roots / "fresh.csv")
    assert len(import_source_poll(source=source)) == 1


def test_folder_cannot_leave_the_tenant_root(tenant_a, roots, tmp_path) -> None:  # type: ignore[no-untyped-def]
    client = tenant_a.client("admin")
    for location in ("../t_test_b", "/etc", "drop/../../x"):
        response = client.post(URL, {"name": "x", "kind": "folder", "location": location}, format="json")
        assert response.status_code == 400 and "location" in response.json()["errors"], location
    outside = tmp_path / "outside.csv"
    outside.write_bytes(_csv("out", 1))
    _old(outside)
    (roots / "link.csv").symlink_to(outside)
    source = ImportSource.objects.create(name="drop", kind="folder", location="drop")
    assert import_source_poll(source=source) == []  # a symlink out of the root is ignored


def test_missing_folder_is_reported_on_the_source(tenant_a, roots) -> None:  # type: ignore[no-untyped-def]
    source = ImportSource.objects.create(name="gone", kind="folder", location="gone")
    assert import_source_poll(source=source) == []
    source.refresh_from_db()
    assert "does not exist" in source.last_error


@pytest.fixture
def http_root(tmp_path) -> Iterator[tuple[Path, str]]:
    served = tmp_path / "site"
    (served / "exports").mkdir(parents=True)
    handler = functools.partial(QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served / "exports", f"http://127.0.0.1:{server.server_address[1]}/exports/"
    server.shutdown()
    server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


def test_http_listing_is_imported_once(tenant_a, roots, http_root) -> None:  # type: ignore[no-untyped-def]
    folder, base = http_root
    (folder / "day1.csv").write_bytes(_csv("h1", 2))
    (folder / "day2.ndjson").write_bytes(b'{"event_id": "h2-0", "type": "click", "timestamp": "2026-11-20T10:00:00Z"}\n')
    (folder / "readme.html").write_text("<p>hi</p>")
    source = ImportSource.objects.create(name="web", kind="http", location=base, pattern="day*")
    uploads = import_source_poll(source=source)
    assert sorted(u.filename for u in uploads) == ["day1.csv", "day2.ndjson"]
    assert {u.format for u in uploads} == {"csv", "ndjson"}
    for upload in uploads:
        upload_run(upload.pk)
    assert sorted(Event.objects.filter(event_id__startswith="h").values_list("event_id", flat=True)) == [
        "h1-0", "h1-1", "h2-0"]
    assert import_source_poll(source=source) == []

    single = ImportSource.objects.create(name="one", kind="http", location=base + "day1.csv")
    [upload] = import_source_poll(source=single)  # another source: its own history
    assert upload_run(upload.pk) == "done" and Upload.objects.get(pk=upload.pk).rows_duplicates == 2


def test_http_errors_are_kept_on_the_source(tenant_a, roots, http_root) -> None:  # type: ignore[no-untyped-def]
    _, base = http_root
    source = ImportSource.objects.create(name="web", kind="http", location=base + "missing/")
    assert import_source_poll(source=source) == []
    source.refresh_from_db()
    assert "404" in source.last_error


def test_private_urls_are_refused_when_the_guard_is_on(tenant_a, roots, settings) -> None:  # type: ignore[no-untyped-def]
    settings.PULSE_ALLOW_PRIVATE_WEBHOOKS = False
    response = tenant_a.client("admin").post(URL, {"name": "x", "kind": "http", "location": "http://127.0.0.1:9/x/"},
                                             format="json")
    assert response.status_code == 400 and "loopback" in str(response.json()["errors"])


def test_beat_polls_only_due_enabled_sources(tenant_a, roots) -> None:  # type: ignore[no-untyped-def]
    (roots / "a.csv").write_bytes(_csv("beat", 1))
    now = timezone.now()
    due = ImportSource.objects.create(name="due", kind="folder", location="drop", poll_interval_seconds=300,
                                      last_polled_at=now - timedelta(seconds=301))
    ImportSource.objects.create(name="recent", kind="folder", location="drop", poll_interval_seconds=300,
                                last_polled_at=now - timedelta(seconds=10))
    ImportSource.objects.create(name="off", kind="folder", location="drop", enabled=False)
    assert import_sources_poll(now=now) == 1
    assert Upload.objects.get().import_source_id == due.pk
    due.refresh_from_db()
    assert due.last_polled_at == now
    assert import_sources_poll(now=now) == 0


def test_import_sources_api_needs_admin(tenant_a, roots) -> None:  # type: ignore[no-untyped-def]
    body = {"name": "drop", "kind": "folder", "location": "drop", "pattern": "*.csv", "poll_interval_seconds": 600}
    assert tenant_a.client("ingest").post(URL, body, format="json").status_code == 403
    assert tenant_a.client("read").get(URL).status_code == 403
    client = tenant_a.client("admin")
    created = client.post(URL, body, format="json")
    assert created.status_code == 201, created.content
    source_id = created.json()["id"]
    assert client.patch(f"{URL}/{source_id}", {"enabled": False}, format="json").json()["enabled"] is False
    assert client.patch(f"{URL}/{source_id}", {"poll_interval_seconds": 5}, format="json").status_code == 400
    assert [s["id"] for s in client.get(URL).json()["results"]] == [source_id]
    assert client.delete(f"{URL}/{source_id}").status_code == 204
    assert client.get(f"{URL}/{source_id}").status_code == 404
