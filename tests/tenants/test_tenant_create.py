from __future__ import annotations

import io
import json
import time

from django.core.management import call_command
from django.db import connection
from rest_framework.test import APIClient

from tenants.models import ApiKey, Tenant


def _drop(slug: str) -> None:
    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant:
        tenant.delete(force_drop=True)


def test_platform_admin_creates_a_tenant_and_gets_its_first_key_once(platform_client, tenant_world, db) -> None:  # type: ignore[no-untyped-def]
    body = {"name": "Shop One", "slug": "shop-one", "plan": "starter", "timezone": "Europe/Berlin", "currency": "EUR"}
    response = platform_client.post("/api/v1/tenants", body, format="json")
    try:
        assert response.status_code == 201, response.content
        data = response.json()
        assert set(data) == {"id", "slug", "api_key"} and data["slug"] == "shop-one"
        tenant = Tenant.objects.get(slug="shop-one")
        assert (tenant.schema_name, tenant.plan_id, tenant.timezone, tenant.currency) == \
            ("t_shop_one", "starter", "Europe/Berlin", "EUR")
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM information_schema.schemata WHERE schema_name = 't_shop_one'")
            assert cursor.fetchone()
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {data['api_key']}")
        assert client.get("/api/v1/tenant").json()["slug"] == "shop-one"
        assert not ApiKey.objects.filter(hashed_key=data["api_key"]).exists()
    finally:
        connection.set_schema_to_public()
        _drop("shop-one")


def test_tenant_create_refuses_bad_fields_with_reasons(platform_client, tenant_world, db) -> None:  # type: ignore[no-untyped-def]
    body = {"name": "X", "slug": "Bad Slug", "plan": "gold", "timezone": "Mars/Base", "currency": "EURO",
            "config": {"nonsense": {}}}
    response = platform_client.post("/api/v1/tenants", body, format="json")
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"slug", "plan", "timezone", "currency", "config"}


def test_duplicate_slug_is_400(platform_client, tenant_world, db) -> None:  # type: ignore[no-untyped-def]
    response = platform_client.post("/api/v1/tenants", {"name": "A again", "slug": "test-a"}, format="json")
    assert response.status_code == 400 and "slug" in response.json()["errors"]


def test_tenant_keys_cannot_create_tenants(tenant_a) -> None:  # type: ignore[no-untyped-def]
    response = tenant_a.client("admin").post("/api/v1/tenants", {"name": "Evil", "slug": "evil"}, format="json")
    assert response.status_code == 403


def test_management_command_prints_json_with_a_working_key(tenant_world, db) -> None:  # type: ignore[no-untyped-def]
    out = io.StringIO()
    started = time.perf_counter()
    call_command("tenant_create", "cmd-shop", "--name", "Cmd Shop", "--plan", "growth", stdout=out)
    elapsed = time.perf_counter() - started
    try:
        data = json.loads(out.getvalue())
        assert data["slug"] == "cmd-shop" and data["api_key"].startswith("pk_")
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {data['api_key']}")
        assert client.get("/api/v1/tenant").json()["plan"] == "growth"
        print(f"tenant_create took {elapsed:.2f}s")
    finally:
        connection.set_schema_to_public()
        _drop("cmd-shop")
