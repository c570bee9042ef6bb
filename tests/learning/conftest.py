from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def tenant(tenant_a: Any) -> Iterator[Any]:
    """Tenant A with an empty config (the session-scoped tenant object is shared between tests)."""
    from scoring.pipeline import engines_clear
    from tenants.models import Tenant

    tenant_a.tenant.config = {}
    Tenant.objects.filter(pk=tenant_a.tenant.pk).update(config={})
    engines_clear()
    yield tenant_a
    tenant_a.tenant.config = {}


@pytest.fixture
def triage_client(tenant: Any) -> Any:
    from rest_framework.test import APIClient

    from tenants.services import api_key_create

    _, raw = api_key_create(tenant=tenant.tenant, name="triage", scopes=["ingest"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    return client
