"""Bulk row writes shared by the hot paths (the events table, the scored-event log)."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

# At or below this many rows one INSERT beats COPY: COPY costs two round trips (the statement, then
# the data), a multi-row INSERT one; above it COPY's cheaper per-row encoding wins.
SMALL_INSERT_ROWS = 8


def rows_write(cursor: Any, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], *,
               count: int | None = None) -> int:
    """Write rows (values in `columns` order, JSON/array columns as their text form) into `table`
    (already quoted) with COPY, or a single INSERT when there are only a few. `cursor` is Django's
    cursor wrapper. Returns the number of rows. `count`: the number of rows when `rows` is an
    iterator, which COPY then streams as it goes. For many rows of mostly numbers
    `rows_write_binary` is cheaper on both sides."""
    listed: list[Sequence[Any]] = []
    if count is None or count <= SMALL_INSERT_ROWS:
        listed = rows if isinstance(rows, list) else list(rows)
        rows, count = listed, len(listed)
    if not count:
        return 0
    if count <= SMALL_INSERT_ROWS:
        rows_insert(cursor, table, columns, listed)
        return count
    names = ", ".join(columns)
    with cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    return count


def rows_insert(cursor: Any, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], *,
                returning: Sequence[str] = (), prefix: tuple[str, Sequence[Any]] = ("", ())) -> None:
    """Write a few rows with ONE multi-row INSERT; with `returning`, the statement returns those
    columns of the written rows (read them from `cursor`): what a caller would otherwise read back.
    `prefix`: SQL and its parameters put before the INSERT (a WITH clause: another write in the same
    round trip)."""
    one = "(" + ", ".join(["%s"] * len(columns)) + ")"
    head, head_params = prefix
    tail = f" RETURNING {', '.join(returning)}" if returning else ""
    cursor.execute(f"{head + ' ' if head else ''}INSERT INTO {table} ({', '.join(columns)}) VALUES " + ", ".join([one] * len(rows)) + tail,
                   [*head_params, *(value for row in rows for value in row)])


# COPY's binary format (PostgreSQL manual, "COPY", "Binary Format"): a signature and two zero words,
# then per row an int16 field count and per field an int32 byte length and the value in its type's
# binary form; the end of data (-1) is sent by psycopg. No text to parse on either side: the float
# columns of the scored-event log cost PostgreSQL a `float8in` per value in text.
COPY_BINARY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_LENGTH = struct.Struct(">i").pack
_ARRAY_OIDS = {np.dtype(np.float64): 701, np.dtype(np.int64): 20, np.dtype(np.int32): 23}
_BINARY_PIECE_ROWS = 1_000


def binary_texts(values: Sequence[str], *, jsonb: bool = False) -> list[bytes]:
    """text (or jsonb: a version byte, then the JSON text) values as binary COPY fields."""
    if not values:
        return []
    head = b"\x01" if jsonb else b""
    extra = len(head)
    # One encode for the column: NUL splits it again (PostgreSQL text never holds NUL).
    return [_LENGTH(len(b) + extra) + head + b for b in "\x00".join(values).encode().split(b"\x00")]


def binary_micros(values: Iterable[Any]) -> np.ndarray:
    """timestamptz values in their binary form: int64 microseconds since 2000-01-01 UTC. Takes aware
    datetimes, naive ones (read as UTC, as the connection's zone reads them) and ISO 8601 text."""
    out = []
    for v in values:
        if isinstance(v, str):
            v = datetime.fromisoformat(v)
        if v.tzinfo is None:
            v = v.replace(tzinfo=UTC)
        d = v - _PG_EPOCH
        out.append((d.days * 86_400 + d.seconds) * 1_000_000 + d.microseconds)
    return np.array(out, dtype=np.int64)


def rows_write_binary(cursor: Any, table: str, columns: Sequence[str], values: Sequence[Any]) -> int:
    """COPY rows into `table` (already quoted) in the binary format, built by columns. `values`, in
    `columns` order, are per column either a NumPy array (1-D int32 -> int4, int64 -> int8 or
    timestamptz as `binary_micros`, float64 -> float8; 2-D -> a one-dimensional array per row of
    those element types, e.g. float8[]) or a list of ready fields (`binary_texts`). Values may not be
    NULL. The fixed-width columns of every row are laid out by one NumPy record array; the rows are
    then joined with the variable ones. Returns the number of rows."""
    fixed = [(c, np.asarray(v)) for c, v in zip(columns, values, strict=True) if isinstance(v, np.ndarray)]
    varying = [(c, v) for c, v in zip(columns, values, strict=True) if not isinstance(v, np.ndarray)]
    n = len(fixed[0][1]) if fixed else len(varying[0][1])
    if not n:
        return 0
    fields: list[tuple[Any, ...]] = [("count", ">i2")]
    for k, (_, v) in enumerate(fixed):
        if v.dtype not in _ARRAY_OIDS or v.ndim not in (1, 2) or (v.ndim == 2 and not v.shape[1]):
            raise TypeError(f"binary COPY: no mapping for a {v.ndim}-D {v.dtype} array of shape {v.shape}")
        if v.ndim == 1:
            fields += [(f"len{k}", ">i4"), (f"v{k}", v.dtype.newbyteorder(">"))]
        else:  # ndim, has-null, element type, then the one dimension's size and lower bound
            fields += [(f"len{k}", ">i4"), (f"head{k}", ">i4", (5,)),
                       (f"v{k}", [("len", ">i4"), ("x", v.dtype.newbyteorder(">"))], (v.shape[1],))]
    rec = np.empty(n, dtype=fields)
    rec["count"] = len(columns)
    for k, (_, v) in enumerate(fixed):
        width = v.dtype.itemsize
        if v.ndim == 1:
            rec[f"len{k}"] = width
            rec[f"v{k}"] = v
        else:
            m = v.shape[1]
            rec[f"len{k}"] = 20 + m * (4 + width)
            rec[f"head{k}"] = (1, 0, _ARRAY_OIDS[v.dtype], m, 1)
            rec[f"v{k}"]["len"] = width
            rec[f"v{k}"]["x"] = v
    block = rec.tobytes()
    size = rec.dtype.itemsize
    stride = 1 + len(varying)
    parts: list[Any] = [None] * (n * stride)
    parts[0::stride] = [block[i:i + size] for i in range(0, n * size, size)]
    for j, (_, v) in enumerate(varying, start=1):
        if len(v) != n:
            raise ValueError("binary COPY: columns of different lengths")
        parts[j::stride] = v
    names = ", ".join([c for c, _ in fixed] + [c for c, _ in varying])
    with cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.write(COPY_BINARY_SIGNATURE)
        for start in range(0, n, _BINARY_PIECE_ROWS):
            copy.write(b"".join(parts[start * stride:(start + _BINARY_PIECE_ROWS) * stride]))
    return n
