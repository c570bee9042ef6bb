"""Django's ASGI handler, run the way our sync code wants: one thread hop per request, into a
small pool of long-lived threads.

Django's own ASGIHandler builds the middleware chain in async mode. Our middleware and views are
sync, so Django's `MiddlewareMixin` middlewares then ran every `process_request`/`process_response`
hook through `sync_to_async`, flipping between the event loop and a thread about fifteen times per
request, and `ThreadSensitiveContext` started a new thread (with its own database connection
wrapper) for every request. Together that cost more CPU than scoring a payment. Here the chain is
built as under WSGI and entered once, on one of PULSE_WEB_THREADS threads that live as long as the
process; the event loop still owns the sockets, reading the body and sending the answer.

Django's `handle` also sends `request_started` through `sync_to_async` (its receivers are sync) and
closes the response through another `sync_to_async`, and races the view against a disconnect
listener task: two more thread hops and two tasks per request, on the event loop's one core. Here
one hop does all of it, as under WSGI: `request_started` (which closes stale database connections),
building the request, the chain and view, and `response.close()` (`request_finished`: connections
given back), all in the serving thread; the loop then sends the bytes. A client that disconnects
no longer cancels anything: a sync view cannot be interrupted anyway. Streaming responses (none in
this API) are closed after they are sent, as Django does; nothing streams from the database."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.db import close_old_connections
from django.urls import set_script_prefix


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

    async def handle(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        try:
            set_script_prefix(get_script_prefix(scope))
            response = await sync_to_async(self._serve, thread_sensitive=False, executor=self._executor)(
                scope, body_file)
            await self.send_response(response, send)
            if response.streaming:
                await sync_to_async(response.close, thread_sensitive=False, executor=self._executor)()
        finally:
            body_file.close()

    def _serve(self, scope: dict[str, Any], body_file: Any) -> Any:
        """The request's whole sync part, on a serving thread: what WSGI's handler does."""
        response = None
        try:
            signals.request_started.send(sender=self.__class__, scope=scope)  # closes stale connections
            request, response = self.create_request(scope, body_file)
            if request is not None:
                response = self.get_response(request)
            return response
        finally:
            if response is not None and not response.streaming:
                response.close()  # request_finished: this thread's connections are given back
            else:
                close_old_connections()
