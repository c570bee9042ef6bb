"""Scheduled batch imports: beat polls each tenant's ImportSources and turns every new file into an Upload.

Sources:
- `folder`: a directory under `<PULSE_IMPORT_ROOT>/<tenant schema>/`. A tenant can only name a path
  inside its own folder; `..`, absolute paths and symlinks leading out are refused (checked on the
  resolved path, at configuration time and again for every file).
- `http`: an http(s) URL of one file, or of a listing (HTML links, a JSON array of URLs / `{"files": [..]}`,
  or one URL per line). Every request goes through pulse.lib.http (timeouts, retries of transient
  failures, no redirects, private-address guard).

A file is imported once: the same name with the same fingerprint (size + mtime, or ETag /
Last-Modified / Content-Length) is not fetched again, and content already imported by the source
(same sha256, e.g. a renamed or re-uploaded copy) is recorded but not ingested again.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import json
import logging
import os
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from pulse.lib import http

from .models import ImportedFile, ImportSource, Upload
from .parsing import detect_format
from .uploads import BLOCK_BYTES, UploadError, upload_store

log = logging.getLogger(__name__)

LISTING_MAX_BYTES = 2 * 1024 * 1024
MAX_FILES_PER_POLL = 100
_HREF_RE = re.compile(r"""href\s*=\s*["']([^"'#?]+[^"'#]*)["']""", re.IGNORECASE)


class ImportConfigError(ValueError):
    """An import source that may not be used as configured (message for the tenant)."""


def import_root() -> Path:
    default = Path(getattr(settings, "STATE_DIR", Path(settings.BASE_DIR) / ".pulse")) / "imports"
    return Path(getattr(settings, "PULSE_IMPORT_ROOT", default))


def tenant_import_root() -> Path:
    return (import_root() / connection.schema_name).resolve()


def import_max_bytes() -> int:
    # pulse.lib.http reads a response into memory, so HTTP files are capped (folders are streamed).
    return int(getattr(settings, "PULSE_IMPORT_HTTP_MAX_BYTES", 100 * 1024 * 1024))


def settle_seconds() -> float:
    """A local file modified more recently than this may still be being written: wait a poll."""
    return float(getattr(settings, "PULSE_IMPORT_SETTLE_SECONDS", 10))


def folder_resolve(location: str) -> Path:
    """The absolute folder for a tenant-relative location; ImportConfigError when outside the tenant root."""
    if not location or location.strip() in ("", "."):
        relative = Path(".")
    else:
        relative = Path(location.strip())
    if relative.is_absolute():
        raise ImportConfigError("Give a folder relative to your import root, not an absolute path.")
    root = tenant_import_root()
    target = (root / relative).resolve()
    if not target.is_relative_to(root):
        raise ImportConfigError("The folder must be inside your import root.")
    return target


def import_source_check(*, kind: str, location: str, format: str = "auto") -> None:
    """Raise ImportConfigError when a source cannot be saved as given."""
    if format not in ("auto", "csv", "ndjson"):
        raise ImportConfigError("format must be auto, csv or ndjson.")
    if kind == ImportSource.Kind.FOLDER:
        folder_resolve(location)
    elif kind == ImportSource.Kind.HTTP:
        try:
            http.check_url_allowed(location)
        except http.UnsafeUrlError as exc:
            raise ImportConfigError(exc.message) from exc
    else:
        raise ImportConfigError("kind must be folder or http.")


# ------------------------------------------------------------------ candidates


@dataclass
class Candidate:
    name: str
    fingerprint: str
    size: int
    location: str  # absolute path or URL
    content_type: str | None = None


def _folder_candidates(source: ImportSource, now: datetime) -> list[Candidate]:
    folder = folder_resolve(source.location)
    if not folder.is_dir():
        raise ImportConfigError(f"Folder '{source.location}' does not exist under your import root.")
    root = tenant_import_root()
    newest = now.timestamp() - settle_seconds()
    found = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith(".") or not fnmatch.fnmatch(entry.name, source.pattern or "*"):
                continue
            real = Path(entry.path).resolve()
            if not real.is_relative_to(root) or not real.is_file():
                continue  # a symlink out of the tenant's folder, or not a regular file
            stat = real.stat()
            if stat.st_mtime > newest:
                continue
            found.append(Candidate(entry.name, f"{stat.st_size}:{stat.st_mtime_ns}", stat.st_size, str(real)))
    return sorted(found, key=lambda c: c.name)


def _listing_urls(result: http.HttpResult, base_url: str) -> list[str]:
    content_type = (result.headers.get("content-type") or "").lower()
    text = result.text
    if "json" in content_type or text.lstrip().startswith(("[", "{")):
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict):
            data = data.get("files")
        if isinstance(data, list):
            urls = [item if isinstance(item, str) else (item.get("url") if isinstance(item, dict) else None)
                    for item in data]
            return [urljoin(base_url, u) for u in urls if isinstance(u, str) and u]
    if "html" in content_type or "<a " in text.lower():
        return [urljoin(base_url, href) for href in _HREF_RE.findall(text)]
    return [urljoin(base_url, line.strip()) for line in text.splitlines() if line.strip() and not line.startswith("#")]


def _url_name(url: str) -> str:
    return unquote(urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1])


def _http_fingerprint(headers: Any) -> str:
    parts = [headers.get("etag") or "", headers.get("last-modified") or "", headers.get("content-length") or ""]
    return "|".join(parts) if any(parts) else ""


def _http_candidates(source: ImportSource) -> list[Candidate]:
    url = source.location
    pattern = source.pattern or "*"
    name = _url_name(url)
    # A URL that names a matching data file is the file itself; anything else is a listing.
    if name and detect_format(name) is not None and fnmatch.fnmatch(name, pattern):
        urls = [url]
    else:
        listing = http.http_get(url, timeout=15, max_bytes=LISTING_MAX_BYTES)
        urls = [u for u in dict.fromkeys(_listing_urls(listing, url))
                if urlsplit(u).scheme in ("http", "https") and fnmatch.fnmatch(_url_name(u), pattern)]
    found = []
    for file_url in urls[:MAX_FILES_PER_POLL]:
        fingerprint, size, content_type = "", 0, None
        try:
            head = http.request("HEAD", file_url, timeout=15, retries=1)
            fingerprint = _http_fingerprint(head.headers)
            size = int(head.headers.get("content-length") or 0)
            content_type = head.headers.get("content-type")
        except http.HttpError as exc:
            if exc.status_code not in (405, 501):  # servers without HEAD: the sha256 decides
                raise
        found.append(Candidate(_url_name(file_url), fingerprint, size, file_url, content_type))
    return found


# ------------------------------------------------------------------ import one file


def _sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(BLOCK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def _import_candidate(source: ImportSource, candidate: Candidate) -> Upload | None:
    if candidate.fingerprint and ImportedFile.objects.filter(
            source=source, name=candidate.name, fingerprint=candidate.fingerprint).exists():
        return None
    fmt = None if source.format == "auto" else source.format
    if source.kind == ImportSource.Kind.FOLDER:
        sha = _sha256_file(candidate.location)
        opener: Any = lambda: open(candidate.location, "rb")  # noqa: E731
    else:
        result = http.http_get(candidate.location, timeout=60, max_bytes=import_max_bytes())
        content = result.content
        sha = hashlib.sha256(content).hexdigest()
        candidate.fingerprint = candidate.fingerprint or _http_fingerprint(result.headers) or f"sha256:{sha}"
        candidate.size = len(content)
        candidate.content_type = candidate.content_type or result.headers.get("content-type")
        opener = lambda: io.BytesIO(content)  # noqa: E731
    seen_before = ImportedFile.objects.filter(source=source, sha256=sha).exists()
    try:
        with transaction.atomic():
            upload = None
            if not seen_before:
                with opener() as stream:
                    upload = upload_store(stream=stream, filename=candidate.name, content_type=candidate.content_type,
                                          format=fmt, source=Upload.Source.IMPORT, import_source=source)
            ImportedFile.objects.create(source=source, name=candidate.name[:500],
                                        fingerprint=candidate.fingerprint[:200], sha256=sha,
                                        size_bytes=candidate.size, upload=upload)
    except IntegrityError:
        return None  # another poller recorded the same file first
    if upload is not None:
        ImportSource.objects.filter(pk=source.pk).update(files_imported=F("files_imported") + 1)
    return upload


def import_source_poll(*, source: ImportSource, now: datetime | None = None) -> list[Upload]:
    """Import the new files of one source now. Errors are kept on the source (last_error), per file
    when only some files fail, so one bad file never blocks the others."""
    now = now or timezone.now()
    errors: list[str] = []
    uploads: list[Upload] = []
    try:
        candidates = (_folder_candidates(source, now) if source.kind == ImportSource.Kind.FOLDER
                      else _http_candidates(source))
    except (ImportConfigError, http.HttpError, OSError) as exc:
        candidates = []
        errors.append(getattr(exc, "message", None) or str(exc))
    for candidate in candidates:
        try:
            upload = _import_candidate(source, candidate)
        except (UploadError, http.HttpError, OSError) as exc:
            errors.append(f"{candidate.name}: {getattr(exc, 'message', None) or exc}")
            continue
        if upload is not None:
            uploads.append(upload)
    ImportSource.objects.filter(pk=source.pk).update(last_error="; ".join(errors)[:4000])
    return uploads


def import_sources_poll(*, now: datetime | None = None) -> int:
    """Poll the tenant's enabled sources whose interval has passed. A source is claimed with a
    compare-and-set on last_polled_at, so two beat runs never poll it at the same time."""
    now = now or timezone.now()
    started = time.monotonic()
    count = 0
    for source in ImportSource.objects.filter(enabled=True).order_by("pk"):
        due = source.last_polled_at is None or source.last_polled_at + timedelta(
            seconds=source.poll_interval_seconds) <= now
        if not due:
            continue
        claimed = ImportSource.objects.filter(
            Q(last_polled_at=source.last_polled_at) if source.last_polled_at else Q(last_polled_at__isnull=True),
            pk=source.pk).update(last_polled_at=now)
        if not claimed:
            continue
        count += len(import_source_poll(source=source, now=now))
        if time.monotonic() - started > 240:  # stay well inside the task time limit; the rest next run
            break
    return count
