"""Tenant A cleaned around the simulator commands, which only speak HTTP (to `pulse_server`, tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import connection

from tests.conftest import TenantHandle

# Tables tenant A's ingestion writes; emptied after each test because tenant A is shared by the suite.
_INGESTION_TABLES = ("events", "ingestion_eventkey", "ingestion_eventbatch", "ingestion_quarantine",
                     "ingestion_orderstatuschange")


def tenant_sql(handle: TenantHandle, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(f'SET search_path TO "{handle.schema}", public')
        try:
            cursor.execute(sql, params)
            return list(cursor.fetchall()) if cursor.description else []
        finally:
            cursor.execute("SET search_path TO public")


@pytest.fixture
def clean_tenant_a(tenant_world: dict[str, TenantHandle], live_db: None) -> Iterator[TenantHandle]:
    """Tenant A with committed data visible to the server; its ingested events are deleted afterwards."""
    handle = tenant_world["a"]
    _clean(handle)
    yield handle
    _clean(handle)


def _clean(handle: TenantHandle) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                       [handle.schema])
        present = {row[0] for row in cursor.fetchall()}
    for table in _INGESTION_TABLES:
        if table in present:
            tenant_sql(handle, f"DELETE FROM {table}")
