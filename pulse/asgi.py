"""ASGI entry point: HTTP goes to Django, websockets to the tenant-scoped live feed."""

from __future__ import annotations

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pulse.settings.local")
django.setup(set_prefix=False)

from pulse.lib.asgi_handler import SyncChainASGIHandler  # noqa: E402

django_asgi_app = SyncChainASGIHandler()

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
