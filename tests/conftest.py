"""Shared fixtures. Two tenants (A and B) with real schemas are created once per test session and
committed, so real Celery workers and servers in other processes can see them; each test then runs
in a transaction that is rolled back (the `db` fixture)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.db import connection
from rest_framework.test import APIClient

from pulse.lib.processes import group_stop
from pulse.web import command as web_command

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class TenantHandle:
    tenant: object
    slug: str
    schema: str
    keys: dict[str, str] = field(default_factory=dict)  # scope name -> raw key; "admin" has every scope

    def client(self, scope: str = "admin") -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {self.keys[scope]}")
        return client

    def activate(self) -> None:
        connection.set_tenant(self.tenant)


def _make_tenant(slug: str, **kwargs: object) -> TenantHandle:
    from tenants.models import Tenant
    from tenants.services import api_key_create, api_key_revoke, tenant_create

    existing = Tenant.objects.filter(slug=slug).first()
    if existing is not None:
        existing.delete(force_drop=True)
    tenant, admin_key = tenant_create(slug=slug, name=f"Tenant {slug}", **kwargs)  # type: ignore[arg-type]
    handle = TenantHandle(tenant=tenant, slug=slug, schema=tenant.schema_name, keys={"admin": admin_key})
    for scope in ("read", "ingest"):
        _, handle.keys[scope] = api_key_create(tenant=tenant, name=f"{scope} key", scopes=[scope])
    revoked, handle.keys["revoked"] = api_key_create(tenant=tenant, name="revoked key", scopes=["read"])
    api_key_revoke(key=revoked)
    return handle


@pytest.fixture(scope="session")
def django_db_setup(request, django_test_environment, django_db_blocker):  # type: ignore[no-untyped-def]
    """Always create the test database, even when the selected tests only use `live_db`/`tenant_world`
    (pytest-django would otherwise set up only the databases that `db`-marked tests ask for)."""
    from django.test.utils import setup_databases, teardown_databases

    with django_db_blocker.unblock():
        config = setup_databases(verbosity=request.config.option.verbose, interactive=False, aliases={"default"})
    yield
    with django_db_blocker.unblock():
        teardown_databases(config, verbosity=request.config.option.verbose)


@pytest.fixture(scope="session")
def tenant_world(django_db_setup, django_db_blocker) -> Iterator[dict[str, TenantHandle]]:  # type: ignore[no-untyped-def]
    with django_db_blocker.unblock():
        world = {
            "a": _make_tenant("test-a", timezone_name="UTC", currency="USD"),
            "b": _make_tenant("test-b", timezone_name="America/Los_Angeles", currency="EUR"),
        }
        connection.set_schema_to_public()
    yield world


@pytest.fixture
def tenant_a(tenant_world, db) -> Iterator[TenantHandle]:  # type: ignore[no-untyped-def]
    handle = tenant_world["a"]
    handle.activate()
    yield handle
    connection.set_schema_to_public()


@pytest.fixture
def tenant_b(tenant_world, db) -> TenantHandle:  # type: ignore[no-untyped-def]
    return tenant_world["b"]


@pytest.fixture
def live_db(tenant_world, django_db_blocker):  # type: ignore[no-untyped-def]
    """Database access in autocommit mode, for tests whose data other processes (a worker, a server)
    must see. Such tests clean up after themselves."""
    with django_db_blocker.unblock():
        yield
        connection.set_schema_to_public()


@pytest.fixture
def committed_tenant(live_db):  # type: ignore[no-untyped-def]
    """make(slug, **tenant_create fields) -> (tenant, raw key): a tenant created for real (its own
    schema, committed), for tests whose data another process must see or that need a fresh schema.
    A tenant left with that slug by an interrupted run is dropped first; every tenant made is dropped
    afterwards (its Redis scoring state goes with it)."""
    from tenants.models import Tenant
    from tenants.services import tenant_create

    made: list[int] = []

    def make(slug: str, **fields: object) -> tuple[Tenant, str]:
        stale = Tenant.objects.filter(slug=slug).first()
        if stale:
            stale.delete(force_drop=True)
        tenant, key = tenant_create(slug=slug, **{"name": slug, "plan": "enterprise", **fields})  # type: ignore[arg-type]
        made.append(tenant.pk)
        return tenant, key

    yield make
    connection.set_schema_to_public()
    for pk in made:
        left = Tenant.objects.filter(pk=pk).first()
        if left is not None:
            left.delete(force_drop=True)


@pytest.fixture
def platform_client() -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {settings.PULSE_PLATFORM_ADMIN_KEY}")
    return client


@pytest.fixture
def redis_client():  # type: ignore[no-untyped-def]
    """The test Redis database, emptied before each test that asks for it."""
    from pulse.lib.redis import get_redis

    client = get_redis()
    client.flushdb()
    return client


def _test_database_url() -> str:
    db = settings.DATABASES["default"]
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


@pytest.fixture(scope="session")
def celery_worker_process(tenant_world) -> Iterator[subprocess.Popen[bytes]]:  # type: ignore[no-untyped-def]
    """A real Celery worker in another process, on the test database and Redis (solo pool)."""
    from pulse.lib.redis import get_redis

    get_redis().delete(settings.CELERY_TASK_DEFAULT_QUEUE)
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="pulse.settings.test", DATABASE_URL=_test_database_url(),
               REDIS_URL=settings.REDIS_URL, PULSE_TEST_REDIS_URL=settings.REDIS_URL)
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "pulse", "worker", "--pool", "solo", "-l", "WARNING",
         "-n", f"test-{os.getpid()}@%h", "--include", "tests.celery_probe"],
        cwd=ROOT, env=env, start_new_session=True,
    )
    _wait_for_worker(proc)
    yield proc
    group_stop(proc, timeout=20)


def _wait_for_worker(proc: subprocess.Popen[bytes], seconds: float = 60) -> None:
    from pulse import celery_app

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"celery worker exited with {proc.returncode}")
        if celery_app.control.ping(timeout=0.5):
            return
    raise RuntimeError("celery worker did not start")


# A real web server (`pulse.web`) in a subprocess on the test database, for what only speaks HTTP or
# websockets (the simulator commands, the server itself). Not pytest-django's `live_server`: its
# transactional flush would wipe the shared test tenants.


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
    """Base URL of the web server (`pulse.web`: uvicorn) serving pulse.asgi on the test database."""
    port = _free_port()
    # A 500's traceback lands here; PULSE_KEEP_SERVER_LOG=1 keeps the file after the session.
    log = tempfile.NamedTemporaryFile(prefix="pulse-test-web-", suffix=".log", delete=False)  # noqa: SIM115
    proc = subprocess.Popen(web_command(port), cwd=ROOT, env=server_env(), stdout=log, stderr=log,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    key = tenant_world["a"].keys["admin"]
    deadline = time.monotonic() + 60
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the web server exited with {proc.returncode}: {Path(log.name).read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/api/v1/status", headers={"Authorization": f"Api-Key {key}"},
                             timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the web server did not answer /api/v1/status within 60 s")
            time.sleep(0.2)
        yield url
    finally:
        group_stop(proc, timeout=10)
        log.close()
        if not os.environ.get("PULSE_KEEP_SERVER_LOG"):
            os.unlink(log.name)
