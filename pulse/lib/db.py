"""Bulk row writes shared by the hot paths (the events table, the scored-event log)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

# At or below this many rows one INSERT beats COPY: COPY costs two round trips (the statement, then
# the data), a multi-row INSERT one; above it COPY's cheaper per-row encoding wins.
SMALL_INSERT_ROWS = 8

_COPY_PIECE_ROWS = 250

# COPY text format: a backslash starts an escape, tab and newline end a field / row.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_escape(value: str) -> str:
    """A text value as COPY's text format must receive it."""
    return value.translate(_COPY_ESCAPES)


def rows_write(cursor: Any, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], *,
               line: str | None = None, escape: Sequence[int] = (), count: int | None = None) -> int:
    """Write rows (values in `columns` order, JSON/array columns as their text form) into `table`
    (already quoted) with COPY, or a single INSERT when there are only a few. `cursor` is Django's
    cursor wrapper. Returns the number of rows.

    `line`, for large batches: a %-format of one row as a COPY text line (values separated by tabs,
    ending in a newline), e.g. "%s\\t%r\\n"; the block is then built by Python's formatting instead
    of psycopg's per-value dumping (which was ~40 % of writing the scored-event log). The columns at
    the `escape` positions get `copy_escape`; every other value must render safely as it is (numbers,
    timestamps, array literals of numbers) and none may be None. The INSERT path binds values.
    `count`: the number of rows when `rows` is an iterator, which COPY then streams as it goes."""
    listed: list[Sequence[Any]] = []
    if count is None or count <= SMALL_INSERT_ROWS or line is not None:
        listed = rows if isinstance(rows, list) else list(rows)
        rows, count = listed, len(listed)
    if not count:
        return 0
    names = ", ".join(columns)
    if count <= SMALL_INSERT_ROWS:
        one = "(" + ", ".join(["%s"] * len(columns)) + ")"
        cursor.execute(f"INSERT INTO {table} ({names}) VALUES " + ", ".join([one] * count),
                       [value for row in listed for value in row])
        return count
    with cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
        if line is None:
            for row in rows:
                copy.write_row(row)
        else:
            # Column-wise: a column is escaped in one translate over its values joined by NUL (which
            # PostgreSQL text never contains), then the lines are formatted from the columns.
            # Sent in pieces, so PostgreSQL parses one while the next is formatted.
            for start in range(0, count, _COPY_PIECE_ROWS):
                cols: list[Sequence[Any]] = list(zip(*listed[start:start + _COPY_PIECE_ROWS], strict=True))
                for i in escape:
                    cols[i] = "\x00".join(cols[i]).translate(_COPY_ESCAPES).split("\x00")
                copy.write("".join(map(line.__mod__, zip(*cols, strict=True))))
    return count
