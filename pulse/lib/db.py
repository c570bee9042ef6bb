"""Bulk row writes shared by the hot paths (the events table, the scored-event log)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

# At or below this many rows one INSERT beats COPY: COPY costs two round trips (the statement, then
# the data), a multi-row INSERT one; above it COPY's cheaper per-row encoding wins.
SMALL_INSERT_ROWS = 8


def rows_write(cursor: Any, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """Write rows (values in `columns` order, JSON/array columns as their text form) into `table`
    (already quoted) with COPY, or a single INSERT when there are only a few. `cursor` is Django's
    cursor wrapper; the values are bound by psycopg either way. Returns the number of rows."""
    rows = rows if isinstance(rows, list) else list(rows)
    if not rows:
        return 0
    names = ", ".join(columns)
    if len(rows) <= SMALL_INSERT_ROWS:
        one = "(" + ", ".join(["%s"] * len(columns)) + ")"
        cursor.execute(f"INSERT INTO {table} ({names}) VALUES " + ", ".join([one] * len(rows)),
                       [value for row in rows for value in row])
        return len(rows)
    with cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    return len(rows)
