"""ASGI entry point: HTTP goes to Django, websockets to the tenant-scoped live feed."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pulse.settings.local")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from alerts.consumers import FeedConsumer  # noqa: E402
from tenants.ws_auth import TenantWebsocketAuthMiddleware  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": TenantWebsocketAuthMiddleware(URLRouter([path("ws/feed/", FeedConsumer.as_asgi())])),
    }
)
