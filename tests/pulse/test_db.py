"""pulse.lib.db.rows_write: a few rows go in by INSERT, many by COPY (psycopg's rows or our own
text lines), and all store the same values, backslashes, tabs and newlines included."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

from django.db import connection

from pulse.lib import db as dbmod

COLUMNS = ("label", "amount", "ip", "at", "doc", "floats")


def _rows(n: int, tag: str) -> list[tuple[object, ...]]:
    return [(f"{tag}-{i} it's \\ %s\ttab\nline", Decimal(f"{i}.25"), f"10.0.0.{i}", datetime(2026, 12, 1, 10, i, tzinfo=UTC),
             json.dumps({"k": i, "s": "é\"x\\y\n"}, ensure_ascii=False), "{" + ",".join(repr(v / 3) for v in range(i + 1)) + "}") for i in range(n)]


def _stored(cursor, tag: str) -> list[tuple[object, ...]]:  # type: ignore[no-untyped-def]
    cursor.execute("SELECT label, amount, host(ip), at, doc, floats FROM rows_write_probe WHERE label LIKE %s "
                   "ORDER BY at", [f"{tag}-%"])
    return [(label.replace(tag, "T"), *rest) for label, *rest in cursor.fetchall()]


def test_insert_and_copy_paths_store_the_same_values(tenant_a, monkeypatch):  # type: ignore[no-untyped-def]
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE rows_write_probe (label text, amount numeric, ip inet, at timestamptz, "
                       "doc jsonb, floats double precision[])")
        statements: list[str] = []
        connection.execute_wrappers.append(lambda execute, sql, *a: (statements.append(sql), execute(sql, *a))[1])
        try:
            assert dbmod.rows_write(cursor, "rows_write_probe", COLUMNS, _rows(5, "small")) == 5
        finally:
            connection.execute_wrappers.pop()
        assert len(statements) == 1 and statements[0].startswith("INSERT INTO rows_write_probe")
        monkeypatch.setattr(dbmod, "SMALL_INSERT_ROWS", 0)
        assert dbmod.rows_write(cursor, "rows_write_probe", COLUMNS, iter(_rows(5, "copied"))) == 5
        assert dbmod.rows_write(cursor, "rows_write_probe", COLUMNS, iter(_rows(5, "streamed")), count=5) == 5
        assert dbmod.rows_write(cursor, "rows_write_probe", COLUMNS, _rows(5, "lines"),
                                line="%s\t%s\t%s\t%s\t%s\t%s\n", escape=(0, 4)) == 5
        assert dbmod.rows_write(cursor, "rows_write_probe", COLUMNS, []) == 0
        small, copied, lines = _stored(cursor, "small"), _stored(cursor, "copied"), _stored(cursor, "lines")
        streamed = _stored(cursor, "streamed")
    assert small == copied == lines == streamed and len(small) == 5
    amount, ip, at, doc, floats = small[4][1:]
    assert (amount, ip, at, floats) == (Decimal("4.25"), "10.0.0.4", datetime(2026, 12, 1, 10, 4, tzinfo=UTC),
                                        [0.0, 1 / 3, 2 / 3, 1.0, 4 / 3])
    assert json.loads(doc) == {"k": 4, "s": "é\"x\\y\n"}  # Django's raw cursor leaves jsonb as text
    assert small[0][0] == "T-0 it's \\ %s\ttab\nline"
