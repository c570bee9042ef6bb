"""A real web server (daphne) in a subprocess on the test database, for the simulator commands, which only
speak HTTP. Not pytest-django's `live_server`: its transactional flush would wipe the shared test tenants."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.db import connection

from tests.conftest import ROOT, TenantHandle, _test_database_url

# Tables tenant A's ingestion writes; emptied after each test because tenant A is shared by the suite.
_INGESTION_TABLES = ("events", "ingestion_eventkey", "ingestion_eventbatch", "ingestion_quarantine",
                     "ingestion_orderstatuschange")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env() -> dict[str, str]:
    """The environment of a process that must see the test database and Redis (server, command)."""
    return dict(os.environ, DJANGO_SETTINGS_MODULE="pulse.settings.test", DATABASE_URL=_test_database_url(),
                REDIS_URL=settings.REDIS_URL, PULSE_TEST_REDIS_URL=settings.REDIS_URL)


@pytest.fixture(scope="session")
def pulse_server(tenant_world: dict[str, TenantHandle]) -> Iterator[str]:
    """Base URL of daphne serving pulse.asgi on the test database."""
    port = _free_port()
    # A 500's traceback lands here; PULSE_KEEP_SERVER_LOG=1 keeps the file after the session.
    log = tempfile.NamedTemporaryFile(prefix="pulse-test-daphne-", suffix=".log", delete=False)  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                             "pulse.asgi:application"], cwd=ROOT, env=server_env(), stdout=log, stderr=log,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    key = tenant_world["a"].keys["admin"]
    deadline = time.monotonic() + 60
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"daphne exited with {proc.returncode}: {Path(log.name).read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/api/v1/status", headers={"Authorization": f"Api-Key {key}"},
                             timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("daphne did not answer /api/v1/status within 60 s")
            time.sleep(0.2)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
        if not os.environ.get("PULSE_KEEP_SERVER_LOG"):
            os.unlink(log.name)


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
