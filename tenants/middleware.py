"""Resolve exactly one tenant per request and activate its schema.

Order: `Authorization: Api-Key` (integrations), `Authorization: Bearer <JWT>` with a tenant claim
(people on the API), then the host name (dashboard). A request that names a key or token is never
routed by host, so a bad key cannot fall back to another tenant."""

from __future__ import annotations

import hmac
from collections.abc import Callable

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse

from .selectors import api_key_resolve, tenant_for_host, tenant_for_slug


class TenantResolutionMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        connection.set_schema_to_public()
        request.tenant = None  # type: ignore[attr-defined]
        request.api_key = None  # type: ignore[attr-defined]
        request.api_key_error = ""  # type: ignore[attr-defined]
        request.platform_admin = False  # type: ignore[attr-defined]

        scheme, _, credential = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
        scheme, credential = scheme.lower(), credential.strip()
        tenant = None
        if scheme == "api-key":
            platform_key = settings.PULSE_PLATFORM_ADMIN_KEY
            if platform_key and hmac.compare_digest(credential.encode(), platform_key.encode()):
                request.platform_admin = True  # type: ignore[attr-defined]
            else:
                key, reason = api_key_resolve(credential)
                request.api_key, request.api_key_error = key, reason  # type: ignore[attr-defined]
                tenant = key.tenant if key else None
        elif scheme == "bearer":
            tenant = _tenant_from_jwt(credential)
        elif not scheme:
            tenant = tenant_for_host(request.get_host())

        if tenant is not None:
            request.tenant = tenant  # type: ignore[attr-defined]
            connection.set_tenant(tenant)
        return self.get_response(request)


def _tenant_from_jwt(raw: str):  # type: ignore[no-untyped-def]
    from rest_framework_simplejwt.exceptions import TokenError
    from rest_framework_simplejwt.tokens import AccessToken

    try:
        token = AccessToken(raw)
    except TokenError:
        return None  # the DRF authentication class answers 401
    slug = token.get("tenant")
    return tenant_for_slug(slug) if slug else None
