"""People get a role per tenant; JWT tokens carry the tenant and roles are enforced on the API."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tenants.services import membership_set


def _token_client(tenant_handle, username: str, role: str) -> APIClient:  # type: ignore[no-untyped-def]
    membership_set(tenant=tenant_handle.tenant, username=username, role=role, password="s3cret-pass-123")
    response = APIClient().post("/api/v1/auth/token",
                                {"username": username, "password": "s3cret-pass-123", "tenant": tenant_handle.slug},
                                format="json")
    assert response.status_code == 200, response.content
    assert response.json()["role"] == role
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['access']}")
    return client


def test_viewer_reads_but_cannot_change_configuration(tenant_a) -> None:  # type: ignore[no-untyped-def]
    viewer = _token_client(tenant_a, "vera", "viewer")
    assert viewer.get("/api/v1/tenant").status_code == 200
    response = viewer.patch("/api/v1/tenant", {"timezone": "Europe/Paris"}, format="json")
    assert response.status_code == 403
    assert viewer.post("/api/v1/api-keys", {"name": "x", "scopes": ["read"]}, format="json").status_code == 403


def test_admin_changes_configuration(tenant_a) -> None:  # type: ignore[no-untyped-def]
    admin = _token_client(tenant_a, "ada", "admin")
    response = admin.patch("/api/v1/tenant", {"timezone": "Europe/Paris"}, format="json")
    assert response.status_code == 200
    assert response.json()["timezone"] == "Europe/Paris"


def test_analyst_cannot_manage_keys(tenant_a) -> None:  # type: ignore[no-untyped-def]
    analyst = _token_client(tenant_a, "anna", "analyst")
    assert analyst.get("/api/v1/status").status_code == 200
    assert analyst.get("/api/v1/api-keys").status_code == 403


def test_token_for_a_tenant_the_user_does_not_belong_to_is_refused(tenant_a, tenant_b) -> None:  # type: ignore[no-untyped-def]
    membership_set(tenant=tenant_a.tenant, username="alice", role="admin", password="s3cret-pass-123")
    response = APIClient().post("/api/v1/auth/token",
                                {"username": "alice", "password": "s3cret-pass-123", "tenant": tenant_b.slug},
                                format="json")
    assert response.status_code == 401


def test_token_of_tenant_a_does_not_open_tenant_b_by_host(tenant_a, tenant_b) -> None:  # type: ignore[no-untyped-def]
    client = _token_client(tenant_a, "bob", "admin")
    response = client.get("/api/v1/tenant", HTTP_HOST=f"{tenant_b.slug}.localhost")
    assert response.status_code == 200
    assert response.json()["slug"] == tenant_a.slug


@pytest.mark.parametrize("bad", ["Bearer garbage", "Bearer "])
def test_bad_bearer_token_is_401(tenant_world, db, bad: str) -> None:  # type: ignore[no-untyped-def]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=bad)
    assert client.get("/api/v1/status").status_code == 401
