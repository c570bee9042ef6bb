"""pulse.lib.db: rows_write (a few rows go in by INSERT, many by COPY) stores the same values either
way, backslashes, tabs and newlines included; rows_write_binary (COPY's binary format built by
columns) stores exactly the values it was given."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import numpy as np
import pytest
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
        assert dbmod.rows_write(cursor, "rows_write_probe", COLUMNS, []) == 0
        small, copied = _stored(cursor, "small"), _stored(cursor, "copied")
        streamed = _stored(cursor, "streamed")
    assert small == copied == streamed and len(small) == 5
    amount, ip, at, doc, floats = small[4][1:]
    assert (amount, ip, at, floats) == (Decimal("4.25"), "10.0.0.4", datetime(2026, 12, 1, 10, 4, tzinfo=UTC),
                                        [0.0, 1 / 3, 2 / 3, 1.0, 4 / 3])
    assert json.loads(doc) == {"k": 4, "s": "é\"x\\y\n"}  # Django's raw cursor leaves jsonb as text
    assert small[0][0] == "T-0 it's \\ %s\ttab\nline"


def test_binary_copy_stores_exactly_the_values_given(tenant_a):  # type: ignore[no-untyped-def]
    n = 1_234  # more than one piece
    rng = np.random.default_rng(7)
    floats = rng.normal(size=(n, 5)) * 10.0 ** rng.integers(-300, 300, (n, 5))
    floats[0] = [math.nan, math.inf, -math.inf, -0.0, 5e-324]
    risk = rng.random(n)
    counts = rng.integers(-2**31, 2**31 - 1, n).astype(np.int32)
    big = rng.integers(-2**62, 2**62, n).astype(np.int64)
    base = datetime(2026, 12, 1, 10, 0, 0, 123456, tzinfo=UTC)
    # aware (in another zone too), naive (read as UTC) and ISO text; before 2000 as well
    stamps = [base + timedelta(seconds=int(s)) for s in rng.integers(-10**9, 10**8, n)]
    given = [s if i % 3 == 0 else s.astimezone(timezone(timedelta(hours=-5))) if i % 3 == 1
             else s.replace(tzinfo=None) for i, s in enumerate(stamps)]
    given[1] = stamps[1].isoformat()
    labels = [f"ev-{i} é \\ \t\n 'q' %s" for i in range(n)]
    docs = [json.dumps({"i": i, "s": "é\"x\\y\n"}) for i in range(n)]
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE binary_probe (label text, n integer, big bigint, at timestamptz, "
                       "risk double precision, doc jsonb, floats double precision[])")
        columns = ("label", "n", "at", "risk", "doc", "floats", "big")
        values = [dbmod.binary_texts(labels), counts, dbmod.binary_micros(given), risk,
                  dbmod.binary_texts(docs, jsonb=True), floats, big]
        assert dbmod.rows_write_binary(cursor, "binary_probe", columns, values) == n
        assert dbmod.rows_write_binary(cursor, "binary_probe", columns, [[], *(v[:0] for v in values[1:4]), [],
                                                                          floats[:0], big[:0]]) == 0
        cursor.execute("SELECT label, n, big, at, risk, doc, floats FROM binary_probe")
        stored = {row[0]: row[1:] for row in cursor.fetchall()}
    assert len(stored) == n
    for i, label in enumerate(labels):
        k, b, at, r, doc, fl = stored[label]
        assert (k, b, at, r) == (int(counts[i]), int(big[i]), stamps[i], float(risk[i]))
        assert json.loads(doc) == json.loads(docs[i])
        assert np.array_equal(np.array(fl), floats[i], equal_nan=True)
    assert math.copysign(1.0, stored[labels[0]][5][3]) == -1.0  # -0.0 kept


def test_binary_copy_refuses_what_it_cannot_map(tenant_a):  # type: ignore[no-untyped-def]
    with connection.cursor() as cursor:
        for bad in (np.zeros(3, dtype=np.float32), np.zeros((3, 0)), np.zeros((3, 2, 2))):
            with pytest.raises(TypeError):
                dbmod.rows_write_binary(cursor, "nowhere", ("x",), [bad])
        with pytest.raises(ValueError):  # a NUL inside a text splits it: refused, not shifted
            dbmod.rows_write_binary(cursor, "nowhere", ("x", "y"), [np.zeros(2), dbmod.binary_texts(["a\x00b", "c"])])
