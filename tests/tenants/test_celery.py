"""Tenant-aware Celery against a real worker process: the task writes into its tenant's schema only."""

from __future__ import annotations

import time
import uuid

from django.db import connection
from django_tenants.utils import schema_context

from tests.celery_probe import probe_write


def _rows(schema: str, marker: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [f"{schema}.celery_probe"])
        if cursor.fetchone()[0] is None:
            return 0
        cursor.execute(f'SELECT count(*) FROM "{schema}".celery_probe WHERE marker = %s', [marker])
        return cursor.fetchone()[0]


def test_task_enqueued_under_tenant_a_writes_in_a_only(celery_worker_process, tenant_world, live_db) -> None:  # type: ignore[no-untyped-def]
    a, b = tenant_world["a"], tenant_world["b"]
    marker = uuid.uuid4().hex
    with schema_context(a.schema):
        probe_write.delay(marker)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _rows(a.schema, marker) == 0:
        time.sleep(0.2)
    try:
        assert _rows(a.schema, marker) == 1
        assert _rows(b.schema, marker) == 0
        assert _rows("public", marker) == 0
    finally:
        with connection.cursor() as cursor:
            for schema in (a.schema, b.schema, "public"):
                cursor.execute(f'DROP TABLE IF EXISTS "{schema}".celery_probe')


def test_task_called_in_process_keeps_the_callers_schema(tenant_world, db) -> None:  # type: ignore[no-untyped-def]
    b = tenant_world["b"]
    with schema_context(b.schema):
        assert probe_write.apply(args=["x"]).get() == b.schema
