"""DRF authentication: API keys (integrations) and JWT with a tenant claim (people)."""

from __future__ import annotations

from typing import Any

from django.db import connection
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request
from rest_framework_simplejwt.authentication import JWTAuthentication

from .models import ApiKey
from .services import api_key_touch

# What each API-key scope or user role allows. Views ask for one of these permissions.
SCOPE_GRANTS: dict[str, frozenset[str]] = {
    "admin": frozenset({"read", "ingest", "triage", "admin"}),
    "ingest": frozenset({"ingest", "triage"}),
    "read": frozenset({"read"}),
}
ROLE_GRANTS: dict[str, frozenset[str]] = {
    "admin": frozenset({"read", "ingest", "triage", "admin"}),
    "analyst": frozenset({"read", "ingest", "triage"}),
    "viewer": frozenset({"read"}),
}


class ApiKeyPrincipal:
    """The caller behind an API key: authenticated for its tenant with the key's scopes only."""

    is_authenticated = True
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None
    id = None

    def __init__(self, key: ApiKey) -> None:
        self.key = key
        self.tenant = key.tenant
        self.username = f"api-key:{key.prefix}"
        self.grants: frozenset[str] = frozenset().union(*(SCOPE_GRANTS.get(s, frozenset()) for s in key.scopes))

    def __str__(self) -> str:
        return self.username


class PlatformAdminPrincipal:
    is_authenticated = True
    is_active = True
    is_staff = True
    is_superuser = False
    pk = None
    id = None
    username = "platform-admin"
    grants = frozenset({"platform"})


class ApiKeyAuthentication(BaseAuthentication):
    keyword = "api-key"

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        scheme, _, _ = get_authorization_header(request).decode(errors="replace").partition(" ")
        if scheme.lower() != self.keyword:
            return None
        django_request = request._request
        if getattr(django_request, "platform_admin", False):
            return PlatformAdminPrincipal(), None
        key: ApiKey | None = getattr(django_request, "api_key", None)
        if key is None:
            raise exceptions.AuthenticationFailed(getattr(django_request, "api_key_error", "") or "invalid API key")
        api_key_touch(key=key)
        return ApiKeyPrincipal(key), key

    def authenticate_header(self, request: Request) -> str:
        return 'Api-Key realm="api"'


class TenantJWTAuthentication(JWTAuthentication):
    """A JWT is valid only for the tenant named in its `tenant` claim (activated by the middleware)."""

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        result = super().authenticate(request)
        if result is None:
            return None
        user, token = result
        tenant = getattr(request._request, "tenant", None)
        if tenant is None or token.get("tenant") != tenant.slug or connection.schema_name != tenant.schema_name:
            raise exceptions.AuthenticationFailed("token is not valid for an active tenant")
        return user, token
