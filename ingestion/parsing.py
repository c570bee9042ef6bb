"""Turning HTTP bodies and uploaded files into raw event dicts (pure, no Django).

Nothing here validates event fields: that is ``ingestion.schemas``. The parsers
only decode and shape, and they keep positions stable: a record that cannot be
decoded is replaced by a ``RawError`` at the same index, so
``validate_batch(parse_body(...))`` reports it with the right index and the
good records around it are kept.

JSON is decoded with ``pydantic_core.from_json`` (Rust, about twice as fast as
the stdlib on event payloads, and it refuses the non-standard NaN/Infinity
literals that PostgreSQL jsonb would refuse later).
"""

from __future__ import annotations

import codecs
import csv
import difflib
import gzip as gzip_module
import io
import itertools
import zlib
from collections.abc import Iterator
from typing import IO, Any, Final, Literal

from pydantic_core import from_json

from ingestion.schemas import EVENT_FIELDS, NON_FIELD_ERRORS, RawError

MAX_EVENTS_PER_REQUEST: Final[int] = 10_000
# One NDJSON line / CSV record larger than this is an error, not a memory spike.
MAX_RECORD_BYTES: Final[int] = 1 << 20
# Raw text kept with a broken record for the quarantine.
RAW_EXCERPT_CHARS: Final[int] = 2000

JSON_CONTENT_TYPES: Final[frozenset[str]] = frozenset({"application/json", "text/json"})
NDJSON_CONTENT_TYPES: Final[frozenset[str]] = frozenset(
    {
        "application/x-ndjson",
        "application/ndjson",
        "application/jsonl",
        "application/x-jsonl",
        "application/jsonlines",
        "application/x-jsonlines",
        "application/json-lines",
    }
)
FileFormat = Literal["csv", "ndjson"]
_GZIP_MAGIC: Final[bytes] = b"\x1f\x8b"
_BOM: Final[bytes] = codecs.BOM_UTF8
_ATTR_PREFIX: Final[str] = "attributes."
_CSV_DELIMITERS: Final[str] = ",;\t|"


class ParseError(Exception):
    """The whole body or file is unusable; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def as_dict(self) -> dict[str, Any]:
        return {"error": self.message, "status": self.status}


# ------------------------------------------------------------------ HTTP bodies


def media_type(content_type: str | None) -> tuple[str, str | None]:
    """``"application/json; charset=UTF-8"`` -> ``("application/json", "utf-8")``."""
    if not content_type:
        return "", None
    main, _, params = content_type.partition(";")
    charset = None
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
    return main.strip().lower(), charset


def parse_body(
    body: bytes,
    content_type: str | None,
    *,
    max_events: int = MAX_EVENTS_PER_REQUEST,
    max_bytes: int | None = None,
) -> list[Any]:
    """Decode a request body into raw events (dicts, other JSON values, or ``RawError``).

    Accepts one event object, a JSON array, ``{"events": [...]}`` (JSON), or
    NDJSON. Raises ``ParseError`` 400 (malformed / wrong shape / empty),
    413 (too many events or too many bytes) or 415 (content type).
    """
    kind, charset = media_type(content_type)
    is_ndjson = kind in NDJSON_CONTENT_TYPES
    if not is_ndjson and kind not in JSON_CONTENT_TYPES and not kind.endswith("+json"):
        raise ParseError(
            415,
            f"Unsupported content type {kind or '(none)'!r}: send application/json or application/x-ndjson.",
        )
    if charset not in (None, "utf-8", "utf8", "us-ascii"):
        raise ParseError(415, f"Unsupported charset {charset!r}: event bodies must be UTF-8.")
    if max_bytes is not None and len(body) > max_bytes:
        raise ParseError(413, f"Body is {len(body)} bytes; the limit is {max_bytes} bytes.")
    if body.startswith(_BOM):
        body = body[len(_BOM) :]
    if not body.strip():
        raise ParseError(400, "Empty body: send at least one event.")
    if is_ndjson:
        return _parse_ndjson(body, max_events)
    return _parse_json(body, max_events)


def _parse_json(body: bytes, max_events: int) -> list[Any]:
    try:
        data = from_json(body, allow_inf_nan=False)
    except (ValueError, RecursionError) as exc:
        raise ParseError(400, f"Malformed JSON: {exc}") from None
    if isinstance(data, dict):
        if "events" in data:
            extra = sorted(k for k in data if k != "events")
            if extra:
                raise ParseError(400, f"Unexpected keys next to 'events': {', '.join(extra)}.")
            data = data["events"]
            if not isinstance(data, list):
                raise ParseError(400, "'events' must be an array of event objects.")
        else:
            return [data]
    if not isinstance(data, list):
        raise ParseError(400, 'The body must be an event object, an array of events or {"events": [...]}.')
    if len(data) > max_events:
        raise ParseError(413, f"{len(data)} events in one request; the limit is {max_events}.")
    return data


def _parse_ndjson(body: bytes, max_events: int) -> list[Any]:
    # Index = position among non-blank lines (what a client counts as "the n-th event").
    lines = [(n, line) for n, line in enumerate(body.split(b"\n"), start=1) if line.strip()]
    if len(lines) > max_events:
        raise ParseError(413, f"{len(lines)} events in one request; the limit is {max_events}.")
    return [_decode_line(line, n) for n, line in lines]


def _decode_line(line: bytes, line_number: int) -> Any:
    try:
        return from_json(line, allow_inf_nan=False)
    except (ValueError, RecursionError) as exc:
        return RawError(
            {NON_FIELD_ERRORS: [f"Line {line_number}: malformed JSON: {exc}"]},
            raw=line[:RAW_EXCERPT_CHARS].decode("utf-8", "replace"),
        )


# ------------------------------------------------------------------ uploaded files


class _PrefixedReader(io.RawIOBase):
    """Puts back bytes already read from a non-seekable, non-peekable stream."""

    def __init__(self, prefix: bytes, rest: IO[bytes]) -> None:
        self._prefix = prefix
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._prefix:
            n = min(len(view), len(self._prefix))
            view[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        data = self._rest.read(len(view))
        view[: len(data)] = data
        return len(data)


def _binary_stream(fileobj: IO[bytes], gzip: bool | None) -> IO[bytes]:
    """A buffered binary stream of the decompressed content (gzip detected by magic bytes)."""
    if gzip is None:
        if hasattr(fileobj, "peek"):
            head = fileobj.peek(2)[:2]
        elif fileobj.seekable():
            pos = fileobj.tell()
            head = fileobj.read(2)
            fileobj.seek(pos)
        else:
            head = fileobj.read(2)
            fileobj = io.BufferedReader(_PrefixedReader(head, fileobj))
        gzip = head == _GZIP_MAGIC
    if gzip:
        return gzip_module.GzipFile(fileobj=fileobj, mode="rb")  # type: ignore[return-value]
    if not hasattr(fileobj, "readline"):
        return io.BufferedReader(fileobj)  # type: ignore[arg-type,type-var]
    return fileobj


def detect_format(filename: str | None, content_type: str | None = None) -> FileFormat | None:
    """``"csv"`` / ``"ndjson"`` from a file name (``.gz`` ignored) or content type; None if unknown."""
    name = (filename or "").lower()
    if name.endswith(".gz"):
        name = name[:-3]
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".ndjson", ".jsonl", ".json")):
        return "ndjson"
    kind, _ = media_type(content_type)
    if kind in ("text/csv", "application/csv"):
        return "csv"
    if kind in NDJSON_CONTENT_TYPES:
        return "ndjson"
    return None


def iter_file_records(
    fileobj: IO[bytes],
    format: str,
    gzip: bool | None = None,
    *,
    skip_rows: int = 0,
    delimiter: str | None = None,
    encoding: str = "utf-8-sig",
) -> Iterator[tuple[int, dict[str, Any] | RawError | Any]]:
    """Stream an uploaded CSV or NDJSON file as ``(row_number, raw_event_or_RawError)``.

    ``row_number`` is 1-based and counts records (CSV: data rows after the
    header; NDJSON: non-blank lines). ``skip_rows=N`` resumes after row N without
    decoding the skipped records. Memory stays bounded by one record (at most
    ``MAX_RECORD_BYTES``) plus I/O buffers, whatever the file size.
    Raises ``ParseError`` (400) when the whole file is unusable: bad header,
    corrupt gzip, undecodable text.
    """
    fmt = format.lower()
    if fmt in ("ndjson", "jsonl", "json"):
        records = _iter_ndjson(_binary_stream(fileobj, gzip), skip_rows)
    elif fmt == "csv":
        records = _iter_csv(_binary_stream(fileobj, gzip), skip_rows, delimiter, encoding)
    else:
        raise ParseError(415, f"Unsupported file format {format!r}: use csv or ndjson.")
    try:
        yield from records
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise ParseError(400, f"Corrupt or truncated compressed file: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ParseError(
            400, f"The file is not valid {encoding} text ({exc.reason}); re-export it as UTF-8."
        ) from None


def _iter_ndjson(stream: IO[bytes], skip_rows: int) -> Iterator[tuple[int, Any]]:
    readline = stream.readline
    row = 0
    line_number = 0
    while True:
        line = readline(MAX_RECORD_BYTES + 1)
        if not line:
            return
        line_number += 1
        if line_number == 1 and line.startswith(_BOM):
            line = line[len(_BOM) :]
        too_long = len(line) > MAX_RECORD_BYTES
        if too_long:
            while line and not line.endswith(b"\n"):  # drop the rest of the oversized line
                line = readline(MAX_RECORD_BYTES)
        elif not line.strip():
            continue
        row += 1
        if row <= skip_rows:
            continue
        if too_long:
            yield (
                row,
                RawError({NON_FIELD_ERRORS: [f"Line {line_number}: longer than {MAX_RECORD_BYTES} bytes."]}),
            )
        else:
            yield row, _decode_line(line, line_number)


def _unknown_columns(names: list[str]) -> list[str]:
    known = set(EVENT_FIELDS)
    problems = []
    for name in names:
        if name in known or (name.startswith(_ATTR_PREFIX) and len(name) > len(_ATTR_PREFIX)):
            continue
        hint = difflib.get_close_matches(name, EVENT_FIELDS, n=1, cutoff=0.75)
        problems.append(f"{name!r}" + (f" (did you mean {hint[0]!r}?)" if hint else ""))
    return problems


def _iter_csv(
    stream: IO[bytes], skip_rows: int, delimiter: str | None, encoding: str
) -> Iterator[tuple[int, Any]]:
    text = io.TextIOWrapper(stream, encoding=encoding, newline="")  # type: ignore[type-var]
    first = text.readline()
    if not first.strip():
        raise ParseError(400, "The CSV file is empty or has no header row.")
    if delimiter is None:
        # The header tells the delimiter: European spreadsheet exports use ';'.
        delimiter = max(_CSV_DELIMITERS, key=first.count)
        if first.count(delimiter) == 0:
            delimiter = ","
    reader = csv.reader(itertools.chain([first], text), delimiter=delimiter)
    header = [name.strip() for name in next(reader)]
    if any(not name for name in header):
        raise ParseError(400, "The CSV header has an empty column name.")
    duplicates = sorted({n for n in header if header.count(n) > 1})
    if duplicates:
        raise ParseError(400, f"Duplicate CSV columns: {', '.join(duplicates)}.")
    # A misspelt column would reject every row: say it once, before reading the file.
    unknown = _unknown_columns(header)
    if unknown:
        raise ParseError(
            400,
            f"Unknown CSV columns: {', '.join(unknown)}. Use event field names; custom data goes in "
            "'attributes.<name>' columns or an 'attributes' JSON column.",
        )
    attr_columns = [
        (i, name[len(_ATTR_PREFIX) :]) for i, name in enumerate(header) if name.startswith(_ATTR_PREFIX)
    ]
    plain = [(i, name) for i, name in enumerate(header) if not name.startswith(_ATTR_PREFIX)]

    try:
        yield from _csv_rows(reader, header, plain, attr_columns, delimiter, skip_rows)
    finally:
        # Do not let the text wrapper close the caller's file when it is collected.
        try:
            text.detach()
        except ValueError:
            pass


def _csv_rows(
    reader: Iterator[list[str]],
    header: list[str],
    plain: list[tuple[int, str]],
    attr_columns: list[tuple[int, str]],
    delimiter: str,
    skip_rows: int,
) -> Iterator[tuple[int, Any]]:
    width = len(header)
    simple = not attr_columns and "attributes" not in header
    row_number = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # e.g. a field over the size limit: lose that record only
            row_number += 1
            if row_number > skip_rows:
                yield row_number, RawError({NON_FIELD_ERRORS: [f"Unreadable CSV record: {exc}"]})
            continue
        if not cells or (len(cells) == 1 and not cells[0].strip()):
            continue  # blank line
        row_number += 1
        if row_number <= skip_rows:
            continue
        if len(cells) > width:
            yield (
                row_number,
                RawError(
                    {NON_FIELD_ERRORS: [f"Row has {len(cells)} values but the header has {width} columns."]},
                    raw=delimiter.join(cells)[:RAW_EXCERPT_CHARS],
                ),
            )
            continue
        if simple:
            yield (
                row_number,
                {name: value for name, value in zip(header, cells, strict=False) if value},
            )  # short rows: rest absent
            continue
        yield row_number, _csv_record(cells, plain, attr_columns, delimiter)


def _csv_record(
    cells: list[str], plain: list[tuple[int, str]], attr_columns: list[tuple[int, str]], delimiter: str
) -> dict[str, Any] | RawError:
    n = len(cells)
    record: dict[str, Any] = {name: cells[i] for i, name in plain if i < n and cells[i]}
    attributes: Any = None
    raw_json = record.pop("attributes", None)
    if raw_json is not None:
        try:
            attributes = from_json(raw_json, allow_inf_nan=False)
        except ValueError as exc:
            return RawError(
                {"attributes": [f"Malformed JSON in the attributes column: {exc}"]},
                raw=delimiter.join(cells)[:RAW_EXCERPT_CHARS],
            )
        if not isinstance(attributes, dict):
            return RawError(
                {"attributes": ["The attributes column must hold a JSON object."]},
                raw=delimiter.join(cells)[:RAW_EXCERPT_CHARS],
            )
    for i, key in attr_columns:
        if i < n and cells[i]:
            if attributes is None:
                attributes = {}
            attributes[key] = cells[i]
    if attributes is not None:
        record["attributes"] = attributes
    return record
