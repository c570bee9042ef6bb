"""File uploads: store the bytes on disk as they arrive, then ingest them in chunks on a worker.

Receiving never holds the file in memory: the request stream (or Django's temporary upload file) is
copied in 1 MiB blocks to MEDIA_ROOT/uploads/<schema>/, hashing as it goes. Processing reads the stored
file with `iter_file_records` (one record in memory at a time) and sends chunks of
PULSE_UPLOAD_CHUNK_ROWS rows through `events_ingest`:

- events without an `event_id` get `u<upload id>-<row>`, so a re-read row is a duplicate, not a copy;
- the upload's progress (rows_done and counts) is written inside the chunk's own transaction
  (`before_commit`), so after a crash the stored rows, the quarantined rows and rows_done always agree
  and the next run resumes with `skip_rows=rows_done`;
- one task runs for at most PULSE_UPLOAD_SLICE_SECONDS and then hands the rest to a new task, so a
  large file never hits the Celery time limit and other tenants' work interleaves with it.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from .models import EventBatch, Upload
from .parsing import ParseError, detect_format, iter_file_records
from .selectors import current_tenant
from .services import events_ingest

log = logging.getLogger(__name__)

BLOCK_BYTES = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"
FORMATS = ("csv", "ndjson")


def chunk_rows() -> int:
    return int(getattr(settings, "PULSE_UPLOAD_CHUNK_ROWS", 5000))


def max_upload_bytes() -> int:
    return int(getattr(settings, "PULSE_UPLOAD_MAX_BYTES", 2 * 1024**3))


def slice_seconds() -> float:
    return float(getattr(settings, "PULSE_UPLOAD_SLICE_SECONDS", 120))


def max_attempts() -> int:
    return int(getattr(settings, "PULSE_UPLOAD_MAX_ATTEMPTS", 5))


class UploadError(Exception):
    """The file is refused before it is stored; `status` is the HTTP status to answer."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def uploads_dir() -> Path:
    return Path(settings.MEDIA_ROOT) / "uploads" / connection.schema_name


def upload_file_path(upload: Upload) -> Path:
    return Path(settings.MEDIA_ROOT) / upload.path


def resolve_format(requested: str | None, filename: str | None, content_type: str | None) -> str:
    if requested:
        fmt = requested.strip().lower()
        fmt = "ndjson" if fmt in ("jsonl", "json") else fmt
        if fmt not in FORMATS:
            raise UploadError(415, "unsupported_media_type", f"Unknown format {requested!r}: use csv or ndjson.")
        return fmt
    fmt = detect_format(filename, content_type)
    if fmt is None:
        raise UploadError(415, "unsupported_media_type",
                          "Cannot tell the file format: name the file *.csv / *.ndjson (optionally .gz), send "
                          "Content-Type text/csv or application/x-ndjson, or add ?format=csv|ndjson.")
    return fmt


def upload_store(
    *,
    stream: IO[bytes] | Any,
    filename: str = "",
    content_type: str | None = None,
    format: str | None = None,
    source: str = Upload.Source.API,
    import_source: Any = None,
    max_bytes: int | None = None,
) -> Upload:
    """Copy `stream` to the tenant's upload folder and create the Upload; processing starts after commit.

    Raises UploadError (415 unknown format, 413 too large, 400 empty). Must run in the tenant's schema."""
    fmt = resolve_format(format, filename, content_type)
    limit = max_upload_bytes() if max_bytes is None else max_bytes
    folder = uploads_dir()
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    head = b""
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=".incoming-")
    try:
        with os.fdopen(fd, "wb") as out:
            while True:
                block = stream.read(BLOCK_BYTES)
                if not block:
                    break
                size += len(block)
                if size > limit:
                    raise UploadError(413, "too_large", f"The file is larger than the limit of {limit:,} bytes.")
                if len(head) < 2:
                    head += block[: 2 - len(head)]
                digest.update(block)
                out.write(block)
        if size == 0:
            raise UploadError(400, "empty", "The file is empty.")
        with transaction.atomic():
            upload = Upload.objects.create(
                source=source, import_source=import_source, filename=(filename or "")[:255], format=fmt,
                path="", size_bytes=size, compressed=head == _GZIP_MAGIC, sha256=digest.hexdigest())
            final = folder / f"{upload.pk}.{fmt}{'.gz' if upload.compressed else ''}"
            os.replace(tmp_name, final)
            upload.path = str(final.relative_to(Path(settings.MEDIA_ROOT)))
            upload.save(update_fields=["path"])
            upload_id = upload.pk
            transaction.on_commit(lambda: _enqueue(upload_id))
        return upload
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise


def _enqueue(upload_id: int) -> None:
    from .tasks import upload_process

    upload_process.delay(upload_id)


# ------------------------------------------------------------------ processing


def _chunks(records: Iterator[tuple[int, Any]], size: int) -> Iterator[list[tuple[int, Any]]]:
    while chunk := list(itertools.islice(records, size)):
        yield chunk


def _try_lock(upload_id: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(hashtext(current_schema() || ':upload'), %s)",
                       [upload_id % 2**31])
        return bool(cursor.fetchone()[0])


def _unlock(upload_id: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock(hashtext(current_schema() || ':upload'), %s)",
                       [upload_id % 2**31])


def upload_run(upload_id: int, *, max_chunks: int | None = None, time_budget: float | None = None) -> str:
    """Ingest the rest of an upload. Returns the final status, "continue" when the time budget or
    `max_chunks` ran out with rows left (call again), or "locked" when another worker has it."""
    if not _try_lock(upload_id):
        return "locked"
    try:
        return _run_locked(upload_id, max_chunks=max_chunks, time_budget=time_budget)
    finally:
        _unlock(upload_id)


def _run_locked(upload_id: int, *, max_chunks: int | None, time_budget: float | None) -> str:
    upload = Upload.objects.filter(pk=upload_id).first()
    if upload is None:
        return "missing"
    if upload.status in (Upload.Status.DONE, Upload.Status.FAILED):
        return upload.status
    tenant = current_tenant()
    now = timezone.now()
    Upload.objects.filter(pk=upload_id).update(status=Upload.Status.PROCESSING, updated_at=now,
                                               started_at=upload.started_at or now)
    deadline = time.monotonic() + time_budget if time_budget else None
    size = chunk_rows()
    chunks = 0
    try:
        with open(upload_file_path(upload), "rb") as raw_file:
            records = iter_file_records(raw_file, upload.format, gzip=None, skip_rows=upload.rows_done)
            for chunk in _chunks(records, size):
                _ingest_chunk(tenant, upload, chunk, raw_file)
                chunks += 1
                if (max_chunks is not None and chunks >= max_chunks) or (deadline and time.monotonic() > deadline):
                    if _at_end(records):
                        break
                    Upload.objects.filter(pk=upload_id).update(status=Upload.Status.PENDING, updated_at=timezone.now())
                    return "continue"
    except ParseError as exc:
        upload.refresh_from_db(fields=["rows_done"])
        where = f" (after row {upload.rows_done})" if upload.rows_done else ""
        _finish(upload_id, Upload.Status.FAILED, error=f"{exc.message}{where}")
        return Upload.Status.FAILED
    except FileNotFoundError:
        _finish(upload_id, Upload.Status.FAILED, error="The stored file is missing; upload it again.")
        return Upload.Status.FAILED
    except Exception as exc:
        attempts = Upload.objects.filter(pk=upload_id).values_list("attempts", flat=True).first() or 0
        status = Upload.Status.FAILED if attempts + 1 >= max_attempts() else Upload.Status.PENDING
        Upload.objects.filter(pk=upload_id).update(status=status, attempts=F("attempts") + 1,
                                                   error=f"{type(exc).__name__}: {exc}"[:2000],
                                                   updated_at=timezone.now())
        log.exception("upload %s failed (attempt %s)", upload_id, attempts + 1)
        raise
    upload.refresh_from_db(fields=["rows_done"])
    if upload.rows_done == 0:
        _finish(upload_id, Upload.Status.FAILED, error="The file has no data rows.", rows_total=0)
        return Upload.Status.FAILED
    _finish(upload_id, Upload.Status.DONE, rows_total=upload.rows_done)
    return Upload.Status.DONE


def _at_end(records: Iterator[tuple[int, Any]]) -> bool:
    """Whether the file has no row left. Reading ahead is harmless: the next run starts from
    rows_done, not from this iterator."""
    try:
        next(records)
    except StopIteration:
        return True
    return False


def _ingest_chunk(tenant: Any, upload: Upload, chunk: list[tuple[int, Any]], raw_file: IO[bytes]) -> None:
    first_row, last_row = chunk[0][0], chunk[-1][0]
    upload_id = upload.pk

    def progress(batch: EventBatch) -> None:
        # Same transaction as the chunk's events and quarantine rows.
        Upload.objects.filter(pk=upload_id).update(
            rows_done=last_row, rows_accepted=F("rows_accepted") + batch.accepted,
            rows_duplicates=F("rows_duplicates") + batch.duplicates,
            rows_rejected=F("rows_rejected") + batch.rejected,
            bytes_done=raw_file.tell(), updated_at=timezone.now())

    # Rows are numbered without gaps, so row = first_row + index in the chunk.
    events_ingest(tenant=tenant, raw_events=[raw for _, raw in chunk], source="upload",
                  reference=f"upload:{upload_id}", index_offset=first_row,
                  event_id_factory=lambda index: f"u{upload_id}-{first_row + index}",
                  before_commit=progress)


def _finish(upload_id: int, status: str, *, error: str = "", rows_total: int | None = None) -> None:
    now = timezone.now()
    fields: dict[str, Any] = {"status": status, "error": error[:4000], "finished_at": now, "updated_at": now}
    if rows_total is not None:
        fields["rows_total"] = rows_total
    Upload.objects.filter(pk=upload_id).update(**fields)


def uploads_stale(*, older_than_seconds: float) -> list[int]:
    """Uploads left pending or processing (a dead worker, a lost task) with attempts left."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    return list(Upload.objects.filter(status__in=[Upload.Status.PENDING, Upload.Status.PROCESSING],
                                      updated_at__lt=cutoff, attempts__lt=max_attempts())
                .values_list("pk", flat=True)[:200])
