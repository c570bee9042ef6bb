"""Bulk INSERT of model rows as one UNNEST statement (one array parameter per column).

Why not `bulk_create`: Django 5.2 only uses its own UNNEST form when no field has a custom
placeholder; `Anomaly.event_ids` (ArrayField) sends it back to `VALUES (%s, ...), (...)` with one
parameter per cell. For the ~700 anomalies of a 10,000-event batch that statement is ~14,000
parameters, and building it (Django's placeholder assembly, then psycopg's client-side merge of a
statement too long for its cache) cost ~25 % of the whole batch consumer. Here the statement is
short and constant, values are prepared by each field exactly as `bulk_create` prepares them
(`pre_save`, `get_db_prep_save`), and array / JSON cells travel as text and are cast in SQL.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.contrib.postgres.fields import ArrayField
from django.db import connection, connections, models

_LENGTH = re.compile(r"\(\d+(,\s*\d+)?\)")


def _array_literal(values: Any) -> str:
    """A one-dimensional PostgreSQL array literal of text elements (the cast parses it)."""
    items = []
    for v in values:
        if v is None:
            items.append("NULL")
        else:
            s = str(v)
            items.append('"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return "{" + ",".join(items) + "}"


def _scalar_literal(values: list[Any]) -> str | None:
    """The column as one text[] literal when every value has an exact text form (str, int, float,
    aware datetime, None); None otherwise. Floats use repr (round-trips exactly)."""
    items = []
    for v in values:
        t = type(v)
        if v is None:
            items.append("NULL")
        elif t is str:
            items.append('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"')
        elif t is float or t is int:
            items.append(repr(v))
        elif t is datetime and v.tzinfo is not None:
            items.append('"' + v.isoformat() + '"')
        else:
            return None
    return "{" + ",".join(items) + "}"


def _base_type(field: models.Field) -> str:
    # varchar(16) -> varchar: the cast must not truncate; the INSERT's assignment still checks length.
    return _LENGTH.sub("", field.db_type(connection) or "")


def rows_insert(model: type[models.Model], objs: Sequence[models.Model]) -> None:
    """Insert unsaved instances in order and set their primary keys (like `bulk_create`)."""
    if not objs:
        return
    meta = model._meta
    pk = meta.pk
    assert pk is not None
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    conn = connections[connection.alias]  # the wrapper itself: the proxy costs a thread-local lookup per access
    columns: list[str] = []
    selects: list[str] = []
    unnest_args: list[str] = []
    params: list[list[Any]] = []
    for j, f in enumerate(fields):
        values = [f.get_db_prep_save(f.pre_save(obj, True), conn) for obj in objs]
        name = f"c{j}"
        if isinstance(f, ArrayField):
            if any(isinstance(e, (list, tuple)) for v in values if v is not None for e in v):
                raise ValueError(f"{meta.label}.{f.name}: nested arrays are not supported by rows_insert")
            params.append(_scalar_literal([None if v is None else _array_literal(v) for v in values]))
            selects.append(f"{name}::{_base_type(f)}")
            cast = "text[]"
        elif isinstance(f, models.JSONField):
            cells = []
            for obj in objs:
                v = getattr(obj, f.attname)
                cells.append(None if v is None and f.null else json.dumps(v, cls=f.encoder))
            params.append(_scalar_literal(cells))
            selects.append(f"{name}::jsonb")
            cast = "text[]"
        else:
            literal = _scalar_literal(values)
            if literal is None:  # a type without a plain text form here: psycopg adapts the list
                params.append(values)
                selects.append(name)
                cast = f"{_base_type(f)}[]"
            else:  # psycopg's per-element list quoting was the next cost; PostgreSQL parses the text
                params.append(literal)
                selects.append(f"{name}::{_base_type(f)}")
                cast = "text[]"
        columns.append(connection.ops.quote_name(f.column))
        unnest_args.append(f"%s::{cast}")
    aliases = ", ".join(f"c{j}" for j in range(len(fields)))
    sql = (f"INSERT INTO {connection.ops.quote_name(meta.db_table)} ({', '.join(columns)}) "
           f"SELECT {', '.join(selects)} FROM unnest({', '.join(unnest_args)}) WITH ORDINALITY AS u({aliases}, ord) "
           f"ORDER BY ord RETURNING {connection.ops.quote_name(pk.column)}")
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        ids = [row[0] for row in cursor.fetchall()]
    for obj, value in zip(objs, ids, strict=True):
        setattr(obj, pk.attname, value)
        obj._state.adding = False
        obj._state.db = connection.alias
