"""Django's ASGI handler, run the way our sync code wants: one thread hop per request, into a
small pool of long-lived threads.

Django's own ASGIHandler builds the middleware chain in async mode. Our middleware and views are
sync, so Django's `MiddlewareMixin` middlewares then ran every `process_request`/`process_response`
hook through `sync_to_async`, flipping between the event loop and a thread about fifteen times per
request, and `ThreadSensitiveContext` started a new thread (with its own database connection
wrapper) for every request. Together that cost more CPU than scoring a payment. Here the chain is
built as under WSGI and entered once, on one of PULSE_WEB_THREADS threads that live as long as the
process; the event loop still owns the sockets, reading the body and sending the answer.

Database connections are taken and given back inside that hop (`close_old_connections` before and
after, as Django's request signals do under WSGI), so nothing is held between requests. No response
here streams from the database (no StreamingHttpResponse), which this relies on."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.db import close_old_connections


class SyncChainASGIHandler(ASGIHandler):
    def __init__(self) -> None:
        super().__init__()
        self._executor = ThreadPoolExecutor(max_workers=settings.PULSE_WEB_THREADS, thread_name_prefix="pulse-http")

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        await self.handle(scope, receive, send)  # no ThreadSensitiveContext: no thread per request

    async def get_response_async(self, request: Any) -> Any:
        return await sync_to_async(self._respond, thread_sensitive=False, executor=self._executor)(request)

    def _respond(self, request: Any) -> Any:
        close_old_connections()
        try:
            return self.get_response(request)
        finally:
            close_old_connections()
