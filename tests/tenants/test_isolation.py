"""Tenant A's key never sees or changes tenant B's data, on every registered endpoint."""

from __future__ import annotations

import json

import pytest
from django.db import connection

from tests.isolation import IsolationCase, all_cases


@pytest.mark.parametrize("case", all_cases(), ids=lambda case: case.name)
def test_tenant_a_never_sees_tenant_b(case: IsolationCase, tenant_a, tenant_b) -> None:  # type: ignore[no-untyped-def]
    connection.set_tenant(tenant_b.tenant)
    ctx = case.seed_b(tenant_b)
    connection.set_tenant(tenant_a.tenant)

    client = tenant_a.client("admin")
    call = getattr(client, case.method)
    kwargs = {"format": "json"} if case.body is not None else {}
    response = call(case.path(ctx), case.body, **kwargs) if case.body is not None else call(case.path(ctx))

    assert response.status_code in case.allowed_status, response.content[:500]
    text = response.content.decode(errors="replace")
    for marker in ctx.get("markers", []):
        assert str(marker) not in text, f"{case.name}: tenant B's {marker!r} leaked: {text[:300]}"
    if case.verify_b is not None:
        connection.set_tenant(tenant_b.tenant)
        case.verify_b(tenant_b, ctx)
    json.loads(text or "null")  # every answer is JSON
