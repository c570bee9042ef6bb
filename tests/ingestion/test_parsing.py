from __future__ import annotations

import gzip
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ingestion.parsing import (
    MAX_EVENTS_PER_REQUEST,
    ParseError,
    detect_format,
    iter_file_records,
    parse_body,
)
from ingestion.schemas import RawError, validate_batch

NOW = datetime(2025, 3, 2, tzinfo=UTC)
CLICK = {"type": "click", "timestamp": "2025-03-01T10:00:00Z"}


def status_of(body: bytes, content_type: str | None, **kw: Any) -> int:
    with pytest.raises(ParseError) as info:
        parse_body(body, content_type, **kw)
    return info.value.status


# ---------------------------------------------------------------- HTTP bodies


def test_single_object_array_and_envelope() -> None:
    one = json.dumps(CLICK).encode()
    assert parse_body(one, "application/json") == [CLICK]
    assert parse_body(b"[" + one + b"," + one + b"]", "application/json; charset=utf-8") == [CLICK, CLICK]
    assert parse_body(json.dumps({"events": [CLICK]}).encode(), "application/json") == [CLICK]
    assert parse_body(b"[]", "application/json") == []


def test_bom_and_vendor_json_type() -> None:
    assert parse_body(b"\xef\xbb\xbf" + json.dumps(CLICK).encode(), "application/vnd.pulse+json") == [CLICK]


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b'{"type": "click",}',
        b"42",
        b'"text"',
        b'{"events": {"type": "click"}}',
        b'{"events": [], "x": 1}',
        b"  ",
        b"[" * 5000,
        b'{"amount": NaN}',
    ],
)
def test_malformed_or_wrong_shape_is_400(body: bytes) -> None:
    assert status_of(body, "application/json") == 400


def test_unsupported_content_type_is_415() -> None:
    assert status_of(b"{}", "application/x-www-form-urlencoded") == 415
    assert status_of(b"{}", None) == 415
    assert status_of(b"a,b", "text/csv") == 415
    assert status_of(b"{}", "application/json; charset=latin-1") == 415


def test_too_many_events_is_413() -> None:
    over = [CLICK] * (MAX_EVENTS_PER_REQUEST + 1)
    assert status_of(json.dumps(over).encode(), "application/json") == 413
    assert status_of(json.dumps({"events": over}).encode(), "application/json") == 413
    ndjson = b"\n".join(json.dumps(e).encode() for e in over)
    assert status_of(ndjson, "application/x-ndjson") == 413
    exactly = json.dumps(over[:-1]).encode()
    assert len(parse_body(exactly, "application/json")) == MAX_EVENTS_PER_REQUEST


def test_body_byte_limit_is_413() -> None:
    assert status_of(json.dumps(CLICK).encode(), "application/json", max_bytes=10) == 413


@pytest.mark.parametrize("content_type", ["application/x-ndjson", "application/jsonl"])
def test_ndjson_with_a_broken_line_keeps_the_others(content_type: str) -> None:
    body = b"\n".join(
        [
            json.dumps({**CLICK, "event_id": "a"}).encode(),
            b"",  # blank lines are ignored and do not shift indexes
            b'{"type": "click", "timestamp": ',
            json.dumps({**CLICK, "event_id": "c"}).encode() + b"\r",
            json.dumps({"type": "order", "timestamp": "2025-03-01T10:00:00Z"}).encode(),
        ]
    )
    raw = parse_body(body, content_type)
    assert len(raw) == 4
    assert isinstance(raw[1], RawError)
    assert "Line 3" in raw[1].errors["non_field_errors"][0]
    assert raw[1].raw == '{"type": "click", "timestamp": '
    result = validate_batch(raw, tenant_tz="UTC", tenant_currency="EUR", now=NOW)
    assert [(i, e["event_id"]) for i, e in result.valid] == [(0, "a"), (2, "c")]
    assert [r["index"] for r in result.rejected] == [1, 3]
    assert "malformed JSON" in result.rejected[0]["errors"]["non_field_errors"][0]
    assert set(result.rejected[1]["errors"]) == {"amount", "order_id"}


# ---------------------------------------------------------------- files


def ndjson_bytes(n: int, broken_at: int | None = None) -> bytes:
    lines = []
    for i in range(1, n + 1):
        lines.append(b"{oops" if i == broken_at else json.dumps({**CLICK, "event_id": f"e{i}"}).encode())
    return b"\n".join(lines) + b"\n"


def test_detect_format() -> None:
    assert detect_format("orders.csv.gz") == "csv"
    assert detect_format("events.JSONL") == "ndjson"
    assert detect_format(None, "text/csv; charset=utf-8") == "csv"
    assert detect_format("data.xlsx") is None


@pytest.mark.parametrize("compress", [False, True])
def test_ndjson_file_plain_and_gzip(compress: bool) -> None:
    data = ndjson_bytes(5, broken_at=3)
    if compress:
        data = gzip.compress(data)
    records = list(iter_file_records(io.BytesIO(data), "ndjson"))
    assert [n for n, _ in records] == [1, 2, 3, 4, 5]
    assert isinstance(records[2][1], RawError)
    assert records[4][1]["event_id"] == "e5"


def test_gzip_detected_on_a_non_seekable_stream() -> None:
    class Pipe(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self._data = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def seekable(self) -> bool:
            return False

        def readinto(self, b: Any) -> int:
            chunk = self._data.read(len(b))
            b[: len(chunk)] = chunk
            return len(chunk)

    records = list(iter_file_records(Pipe(gzip.compress(ndjson_bytes(3))), "ndjson"))  # type: ignore[arg-type]
    assert [r["event_id"] for _, r in records] == ["e1", "e2", "e3"]


def test_ndjson_resume_skips_rows() -> None:
    data = gzip.compress(ndjson_bytes(10))
    records = list(iter_file_records(io.BytesIO(data), "ndjson", skip_rows=7))
    assert [(n, r["event_id"]) for n, r in records] == [(8, "e8"), (9, "e9"), (10, "e10")]


CSV_TEXT = (
    "\ufefftype,timestamp,order_id,amount,currency,attributes.coupon,attributes.gift\n"
    "order,2025-03-01T10:00:00Z,o-1,19.99,usd,SPRING,\n"
    "\n"
    'order,2025-03-01T10:00:00Z,"o-2, with comma",0.50,,,yes\n'
    "order,2025-03-01T10:00:00Z,o-3,abc,EUR,,\n"
    "order,2025-03-01T10:00:00Z,o-4,1,EUR,,,extra\n"
)


def test_csv_records_attributes_and_empty_cells() -> None:
    records = list(iter_file_records(io.BytesIO(CSV_TEXT.encode()), "csv", gzip=False))
    assert [n for n, _ in records] == [1, 2, 3, 4]
    first = records[0][1]
    assert first == {
        "type": "order",
        "timestamp": "2025-03-01T10:00:00Z",
        "order_id": "o-1",
        "amount": "19.99",  # stays a string for the validator
        "currency": "usd",
        "attributes": {"coupon": "SPRING"},
    }
    assert records[1][1]["order_id"] == "o-2, with comma"
    assert records[1][1]["attributes"] == {"gift": "yes"}
    assert "currency" not in records[1][1]
    assert isinstance(records[3][1], RawError)
    result = validate_batch([r for _, r in records], tenant_tz="UTC", tenant_currency="EUR", now=NOW)
    assert [i for i, _ in result.valid] == [0, 1]
    assert result.valid[1][1]["currency"] == "EUR"
    assert [r["index"] for r in result.rejected] == [2, 3]
    assert "amount" in result.rejected[0]["errors"]


def test_csv_attributes_json_column_and_semicolons() -> None:
    text = 'type;timestamp;attributes\nclick;2025-03-01T10:00:00Z;"{""ab"": 1}"\nclick;2025-03-01T10:00:00Z;[1]\n'
    records = list(iter_file_records(io.BytesIO(text.encode()), "csv"))
    assert records[0][1]["attributes"] == {"ab": 1}
    assert isinstance(records[1][1], RawError)
    assert "attributes" in records[1][1].errors


def test_csv_bad_header_fails_fast() -> None:
    with pytest.raises(ParseError) as info:
        list(iter_file_records(io.BytesIO(b"type,timestamp,ammount\nclick,x,1\n"), "csv"))
    assert info.value.status == 400
    assert "did you mean 'amount'" in info.value.message
    with pytest.raises(ParseError):
        list(iter_file_records(io.BytesIO(b"type,type\n"), "csv"))
    with pytest.raises(ParseError):
        list(iter_file_records(io.BytesIO(b""), "csv"))


def test_corrupt_gzip_and_bad_encoding_raise_parse_error() -> None:
    data = gzip.compress(ndjson_bytes(2000))
    with pytest.raises(ParseError):
        list(iter_file_records(io.BytesIO(data[: len(data) // 2]), "ndjson"))
    with pytest.raises(ParseError) as info:
        list(iter_file_records(io.BytesIO("type,timestamp\nclick,\xe9t\xe9\n".encode("latin-1")), "csv"))
    assert "UTF-8" in info.value.message


def test_caller_file_is_not_closed() -> None:
    buffer = io.BytesIO(b"type,timestamp\nclick,2025-03-01T10:00:00Z\n")
    records = iter_file_records(buffer, "csv")
    next(records)
    records.close()
    assert not buffer.closed


def _rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_200k_row_gzip_csv_streams_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.csv.gz"
    with gzip.open(path, "wt", compresslevel=1, newline="") as out:
        out.write("type,timestamp,customer_id,order_id,amount,currency,attributes.note\n")
        for i in range(200_000):
            out.write(f"order,2025-03-01T10:{i % 60:02d}:00Z,c{i % 977},o{i},{i % 500}.25,EUR,row {i}\n")
    with path.open("rb") as fh:
        baseline = _rss_kb()
        peak = baseline
        count = 0
        last = None
        for row_number, record in iter_file_records(fh, "csv"):
            count += 1
            last = (row_number, record)
            if row_number % 20_000 == 0:
                peak = max(peak, _rss_kb())
        peak = max(peak, _rss_kb())
    assert count == 200_000
    assert last is not None and last[0] == 200_000 and last[1]["order_id"] == "o199999"
    # Holding the rows would cost well over 100 MB; streaming keeps a few buffers.
    assert peak - baseline < 20_000, f"RSS grew by {peak - baseline} kB"

    with path.open("rb") as fh:
        resumed = iter_file_records(fh, "csv", skip_rows=199_998)
        assert [n for n, _ in resumed] == [199_999, 200_000]
