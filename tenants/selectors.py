"""Reads for tenancy and access."""

from __future__ import annotations

import hmac
from typing import Any

from .models import ApiKey, Domain, Membership, Tenant
from .services import KEY_PREFIX_LEN, hash_key


def api_key_parse_prefix(raw_key: str) -> str | None:
    if not raw_key.startswith("pk_") or len(raw_key) < 3 + KEY_PREFIX_LEN + 2:
        return None
    prefix = raw_key[3:3 + KEY_PREFIX_LEN]
    if raw_key[3 + KEY_PREFIX_LEN] != "_":
        return None
    return prefix


def api_key_resolve(raw_key: str) -> tuple[ApiKey | None, str]:
    """Find the key for a raw value. Returns (key, "") or (None, reason)."""
    prefix = api_key_parse_prefix(raw_key)
    if prefix is None:
        return None, "malformed API key"
    key = ApiKey.objects.select_related("tenant").filter(prefix=prefix).first()
    # Compare even when no key was found so timing does not reveal which prefixes exist.
    expected = key.hashed_key if key else "0" * 64
    if not hmac.compare_digest(expected, hash_key(raw_key)) or key is None:
        return None, "unknown API key"
    if key.revoked_at is not None:
        return None, "revoked API key"
    if not key.tenant.is_active:
        return None, "tenant is suspended"
    return key, ""


def tenant_for_host(host: str) -> Tenant | None:
    hostname = host.split(":")[0].lower()
    domain = Domain.objects.select_related("tenant").filter(domain=hostname).first()
    return domain.tenant if domain and domain.tenant.is_active else None


def tenant_for_slug(slug: str) -> Tenant | None:
    return Tenant.objects.filter(slug=slug, is_active=True).first()


def membership_role(*, user: Any, tenant: Tenant) -> str | None:
    if getattr(user, "is_superuser", False):
        return Membership.Role.ADMIN
    membership = Membership.objects.filter(user_id=user.pk, tenant=tenant).only("role").first()
    return membership.role if membership else None


def tenants_active() -> list[Tenant]:
    return list(Tenant.objects.filter(is_active=True).exclude(schema_name="public").order_by("pk"))


def tenant_current() -> Tenant:
    """The Tenant whose schema is active. Tasks activate schemas by name (a stand-in object without
    fields), so the row is loaded when needed."""
    from django.db import connection

    tenant = getattr(connection, "tenant", None)
    if isinstance(tenant, Tenant):
        return tenant
    found = Tenant.objects.get(schema_name=connection.schema_name)
    return found
