"""Writes for tenants, keys and people. Keyword-only, typed; views and commands call these."""

from __future__ import annotations

import hashlib
import secrets
import string
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from .config import config_validate
from .models import ApiKey, Domain, Membership, Plan, Tenant

KEY_PREFIX_LEN = 10
_PREFIX_ALPHABET = string.ascii_lowercase + string.digits
ALL_SCOPES = [ApiKey.Scope.INGEST, ApiKey.Scope.READ, ApiKey.Scope.ADMIN]


def hash_key(raw_key: str) -> str:
    # Keys are 256-bit random secrets, so a fast hash is enough: nothing to brute-force.
    return hashlib.sha256(raw_key.encode()).hexdigest()


def api_key_create(*, tenant: Tenant, name: str, scopes: list[str], created_by: str = "") -> tuple[ApiKey, str]:
    """Create a key and return it with its raw value, which is shown once and never stored."""
    unknown = set(scopes) - set(ApiKey.Scope.values)
    if unknown or not scopes:
        raise ValueError(f"scopes must be a non-empty subset of {ApiKey.Scope.values}")
    prefix = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(KEY_PREFIX_LEN))
    raw = f"pk_{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey.objects.create(
        tenant=tenant, name=name, prefix=prefix, hashed_key=hash_key(raw),
        scopes=sorted(set(scopes)), created_by=created_by,
    )
    return key, raw


def api_key_revoke(*, key: ApiKey) -> ApiKey:
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
    return key


def api_key_touch(*, key: ApiKey) -> None:
    """Record use at most once a minute per key so the hot path does not write on every request."""
    now = timezone.now()
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now


def tenant_create(
    *,
    slug: str,
    name: str,
    plan: str = "free",
    timezone_name: str = "UTC",
    currency: str = "USD",
    config: dict[str, Any] | None = None,
    domain: str | None = None,
    created_by: str = "",
) -> tuple[Tenant, str]:
    """Create a tenant with its schema, a host name and a first admin API key (returned raw, once)."""
    config = config_validate(config or {})
    tenant = Tenant(
        schema_name=Tenant.schema_for_slug(slug), slug=slug, name=name,
        plan=Plan.objects.get(code=plan), timezone=timezone_name, currency=currency, config=config,
    )
    tenant.full_clean()
    tenant.save(verbosity=0)  # creates and migrates the schema (django-tenants), quietly
    with transaction.atomic():
        Domain.objects.create(tenant=tenant, domain=domain or f"{slug}.localhost", is_primary=True)
        _, raw = api_key_create(tenant=tenant, name="first admin key", scopes=list(ALL_SCOPES), created_by=created_by)
    return tenant, raw


def membership_set(*, tenant: Tenant, username: str, role: str, password: str | None = None,
                   email: str = "") -> Membership:
    """Create the user if needed and give them `role` in `tenant`."""
    if role not in Membership.Role.values:
        raise ValueError(f"role must be one of {Membership.Role.values}")
    user_model = get_user_model()
    user, created = user_model.objects.get_or_create(username=username, defaults={"email": email})
    if password:
        user.set_password(password)
        user.save(update_fields=["password"])
    elif created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    membership, _ = Membership.objects.update_or_create(user=user, tenant=tenant, defaults={"role": role})
    return membership
