from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tenants.models import ApiKey
from tenants.services import hash_key

STATUS = "/api/v1/status"
KEYS = "/api/v1/api-keys"


def _client(header: str | None) -> APIClient:
    client = APIClient()
    if header is not None:
        client.credentials(HTTP_AUTHORIZATION=header)
    return client


@pytest.mark.parametrize(
    "header, reason",
    [
        (None, "Authenticate"),
        ("Api-Key not-a-key", "malformed API key"),
        ("Api-Key pk_abcdefghij_wrongsecretwrongsecretwrongsecret", "unknown API key"),
    ],
)
def test_missing_malformed_or_unknown_key_is_401_json(tenant_world, db, header, reason) -> None:  # type: ignore[no-untyped-def]
    response = _client(header).get(STATUS)
    assert response.status_code == 401
    assert reason in response.json()["detail"]
    assert response["Content-Type"].startswith("application/json")


def test_revoked_key_is_401(tenant_a) -> None:  # type: ignore[no-untyped-def]
    response = _client(f"Api-Key {tenant_a.keys['revoked']}").get(STATUS)
    assert response.status_code == 401
    assert response.json()["detail"] == "revoked API key"


def test_key_with_right_prefix_but_wrong_secret_is_401(tenant_a) -> None:  # type: ignore[no-untyped-def]
    real = tenant_a.keys["read"]
    forged = real[:-4] + ("AAAA" if not real.endswith("AAAA") else "BBBB")
    assert _client(f"Api-Key {forged}").get(STATUS).status_code == 401


def test_wrong_scope_is_403(tenant_a) -> None:  # type: ignore[no-untyped-def]
    # listing keys needs the admin scope; a read key authenticates but may not
    response = tenant_a.client("read").get(KEYS)
    assert response.status_code == 403
    assert "admin" in response.json()["detail"]
    assert tenant_a.client("ingest").get(KEYS).status_code == 403
    assert tenant_a.client("admin").get(KEYS).status_code == 200


def test_stored_value_is_a_hash_not_the_key(tenant_a) -> None:  # type: ignore[no-untyped-def]
    raw = tenant_a.keys["admin"]
    stored = ApiKey.objects.get(prefix=raw[3:13])
    assert raw not in {stored.hashed_key, stored.prefix, stored.name}
    assert stored.hashed_key == hash_key(raw)
    assert len(stored.prefix) == 10 and raw.startswith(f"pk_{stored.prefix}_")


def test_create_list_and_revoke_a_key(tenant_a) -> None:  # type: ignore[no-untyped-def]
    admin = tenant_a.client("admin")
    created = admin.post(KEYS, {"name": "shop backend", "scopes": ["ingest"]}, format="json")
    assert created.status_code == 201
    raw = created.json()["api_key"]
    assert _client(f"Api-Key {raw}").get(STATUS).status_code == 200
    listed = admin.get(KEYS).json()
    assert "api_key" not in listed[0] and any(k["name"] == "shop backend" for k in listed)

    assert admin.delete(f"{KEYS}/{created.json()['id']}").status_code == 200
    assert _client(f"Api-Key {raw}").get(STATUS).status_code == 401


def test_invalid_scope_on_create_is_400_with_field_errors(tenant_a) -> None:  # type: ignore[no-untyped-def]
    response = tenant_a.client("admin").post(KEYS, {"name": "x", "scopes": ["root"]}, format="json")
    assert response.status_code == 400
    assert "scopes" in response.json()["errors"]


def test_last_used_is_recorded(tenant_a) -> None:  # type: ignore[no-untyped-def]
    raw = tenant_a.keys["read"]
    ApiKey.objects.filter(prefix=raw[3:13]).update(last_used_at=None)
    tenant_a.client("read").get(STATUS)
    assert ApiKey.objects.get(prefix=raw[3:13]).last_used_at is not None


def test_a_resolved_key_is_answered_from_memory_until_it_is_revoked(tenant_a, settings, django_assert_num_queries) -> None:  # type: ignore[no-untyped-def]
    from tenants.selectors import api_key_resolve, api_keys_forget
    from tenants.services import api_key_create, api_key_revoke

    settings.PULSE_API_KEY_CACHE_SECONDS = 60.0
    api_keys_forget()
    _, raw = api_key_create(tenant=tenant_a.tenant, name="cached key", scopes=["read"])
    key, reason = api_key_resolve(raw)
    assert key is not None and reason == ""
    with django_assert_num_queries(0):
        again, _ = api_key_resolve(raw)
    assert again is not None and again.pk == key.pk
    # A wrong secret with the same prefix is never answered from memory.
    assert api_key_resolve(raw[:-4] + "xxxx") == (None, "unknown API key")
    api_key_revoke(key=ApiKey.objects.get(pk=key.pk))  # the save clears this process's memory
    assert api_key_resolve(raw) == (None, "revoked API key")
    api_keys_forget()
