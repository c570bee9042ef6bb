from __future__ import annotations

from typing import Any

from tests.isolation import IsolationCase


def _seed_key(b: Any) -> dict[str, Any]:
    from tenants.services import api_key_create

    key, _ = api_key_create(tenant=b.tenant, name="b-only-key-name", scopes=["read"])
    return {"id": key.pk, "markers": ["b-only-key-name", key.prefix]}


def _key_not_revoked(b: Any, ctx: dict[str, Any]) -> None:
    from tenants.models import ApiKey

    assert ApiKey.objects.get(pk=ctx["id"]).revoked_at is None


def _seed_nothing(b: Any) -> dict[str, Any]:
    return {"markers": [b.slug, b.schema]}


def _b_unchanged(b: Any, ctx: dict[str, Any]) -> None:
    from tenants.models import Tenant

    assert Tenant.objects.get(pk=b.tenant.pk).name == f"Tenant {b.slug}"


ISOLATION_CASES = [
    IsolationCase("list api keys", "get", lambda ctx: "/api/v1/api-keys", _seed_key),
    IsolationCase("revoke B's key", "delete", lambda ctx: f"/api/v1/api-keys/{ctx['id']}", _seed_key,
                  allowed_status=(404,), verify_b=_key_not_revoked),
    IsolationCase("current tenant", "get", lambda ctx: "/api/v1/tenant", _seed_nothing),
    IsolationCase("patch tenant", "patch", lambda ctx: "/api/v1/tenant", _seed_nothing, body={"name": "changed"},
                  verify_b=_b_unchanged),
    IsolationCase("status", "get", lambda ctx: "/api/v1/status", _seed_nothing),
]
