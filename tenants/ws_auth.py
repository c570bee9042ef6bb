"""Websocket authentication: the same API keys as the REST API (header, or `?api_key=` for browsers),
or a logged-in dashboard session on the tenant's host. Sets scope["tenant"] or leaves it None."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from channels.auth import AuthMiddleware
from channels.db import database_sync_to_async
from channels.sessions import CookieMiddleware, SessionMiddleware

from .selectors import api_key_resolve, membership_role, tenant_for_host


@database_sync_to_async
def _resolve(raw_key: str | None, host: str, user: Any) -> Any:
    if raw_key:
        key, _ = api_key_resolve(raw_key)
        return key.tenant if key and ({"read", "admin"} & set(key.scopes)) else None
    if user is not None and user.is_authenticated:
        tenant = tenant_for_host(host)
        if tenant is not None and membership_role(user=user, tenant=tenant):
            return tenant
    return None


class _TenantResolver:
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        raw_key = None
        scheme, _, credential = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "api-key":
            raw_key = credential.strip()
        else:
            raw_key = (parse_qs(scope.get("query_string", b"").decode()).get("api_key") or [None])[0]
        scope = dict(scope)
        scope["tenant"] = await _resolve(raw_key, headers.get("host", ""), scope.get("user"))
        return await self.inner(scope, receive, send)


def TenantWebsocketAuthMiddleware(inner: Any) -> Any:  # noqa: N802 (reads like a class at the call site)
    return CookieMiddleware(SessionMiddleware(AuthMiddleware(_TenantResolver(inner))))
