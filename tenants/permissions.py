"""One permission class for every tenant endpoint.

A view says what it needs per method or action with `required_scopes`, e.g.
`{"GET": "read", "POST": "ingest"}`; by default reads need `read` and writes need `admin`.
`"any"` accepts any authenticated caller of the tenant; `"platform"` is for platform admins."""

from __future__ import annotations

from typing import Any

from django.db import connection
from rest_framework import exceptions
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from .auth import ROLE_GRANTS, ApiKeyPrincipal, PlatformAdminPrincipal
from .selectors import membership_role


def required_scope(request: Request, view: Any) -> str:
    scopes: dict[str, str] = getattr(view, "required_scopes", {}) or {}
    action = getattr(view, "action", None)
    if action and action in scopes:
        return scopes[action]
    if request.method in scopes:
        return scopes[request.method]
    return "read" if request.method in SAFE_METHODS else "admin"


def grants_for(request: Request) -> frozenset[str]:
    """What the authenticated caller may do in the active tenant (cached on the request)."""
    cached = getattr(request, "_pulse_grants", None)
    if cached is not None:
        return cached
    user = request.user
    grants: frozenset[str] = frozenset()
    tenant = getattr(request._request, "tenant", None)
    if isinstance(user, (ApiKeyPrincipal, PlatformAdminPrincipal)):
        grants = user.grants
    elif user is not None and user.is_authenticated:
        if user.is_superuser:
            grants = frozenset({"platform"})
        if tenant is not None:
            role = membership_role(user=user, tenant=tenant)
            grants = grants | ROLE_GRANTS.get(role or "", frozenset())
    request._pulse_grants = grants
    return grants


class TenantScope(BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        needed = required_scope(request, view)
        if request.user is None or not request.user.is_authenticated:
            raise exceptions.NotAuthenticated("Authenticate with 'Authorization: Api-Key <key>' or a bearer token.")
        grants = grants_for(request)
        if needed == "platform":
            if "platform" not in grants:
                raise exceptions.PermissionDenied("Only platform administrators may do this.")
            return True
        if connection.schema_name == "public" or getattr(request._request, "tenant", None) is None:
            raise exceptions.PermissionDenied("This endpoint works on a tenant: use a tenant API key or token.")
        if needed == "any":
            return bool(grants - {"platform"})
        if needed not in grants:
            raise exceptions.PermissionDenied(f"This action needs the '{needed}' permission.")
        return True
