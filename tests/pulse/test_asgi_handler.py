"""pulse.lib.asgi_handler through pulse.asgi.application: the whole middleware chain runs, on a few
long-lived threads (not one per request), and no database connection is held between requests."""

from __future__ import annotations

import json
import threading

from asgiref.sync import async_to_sync
from django.db import connection


def _get(path: str, key: str) -> tuple[int, dict[bytes, bytes], bytes]:
    from pulse.asgi import application

    scope = {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(), "query_string": b"",
             "headers": [(b"host", b"testserver"), (b"authorization", f"Api-Key {key}".encode())],
             "server": ("testserver", 80), "client": ("127.0.0.1", 5555), "scheme": "http", "http_version": "1.1",
             "asgi": {"version": "3.0"}}
    messages: list[dict[str, object]] = []
    sent = threading.Event()

    async def receive() -> dict[str, object]:
        if not sent.is_set():
            sent.set()
            return {"type": "http.request", "body": b"", "more_body": False}
        import asyncio

        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, object]) -> None:
        messages.append(message)

    async_to_sync(application)(scope, receive, send)
    start = next(m for m in messages if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")  # type: ignore[misc]
    headers = {name.lower(): value for name, value in start["headers"]}  # type: ignore[attr-defined]
    return int(start["status"]), headers, body  # type: ignore[arg-type,call-overload]


def test_requests_run_the_sync_chain_on_long_lived_threads(tenant_world, live_db, settings):  # type: ignore[no-untyped-def]
    from pulse.asgi import django_asgi_app

    a, b = tenant_world["a"], tenant_world["b"]
    try:
        for _ in range(3 * settings.PULSE_WEB_THREADS):
            status, headers, body = _get("/api/v1/anomalies", a.keys["read"])
            assert status == 200, body
            assert headers[b"x-frame-options"] == b"DENY"  # a response hook of Django's middleware ran
            assert isinstance(json.loads(body)["results"], list)
        status, _, body = _get("/api/v1/anomalies", "pk_bogus.key")
        assert status == 401 and json.loads(body)["error"]  # our JSON error body, not Django's page
        assert _get("/api/v1/anomalies", b.keys["read"])[0] == 200
        threads = settings.PULSE_WEB_THREADS
        assert 1 <= len([t for t in threading.enumerate() if t.name.startswith("pulse-http")]) <= threads
    finally:
        names = _on_each_request_thread(django_asgi_app, settings.PULSE_WEB_THREADS)
    # Every thread still works after serving requests (and had its connection closed for the teardown).
    assert len(names) == settings.PULSE_WEB_THREADS and all(n.startswith("pulse-http") for n in names)


def _on_each_request_thread(handler, threads: int) -> set[str]:  # type: ignore[no-untyped-def]
    """One task per request thread (each waits for all the others, so no thread takes two): query,
    then close the thread's connection."""
    barrier = threading.Barrier(threads)

    def task() -> str:
        barrier.wait(10)
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        connection.close()
        return threading.current_thread().name

    return {f.result() for f in [handler._executor.submit(task) for _ in range(threads)]}


def test_request_signals_run_once_in_the_serving_thread(tenant_world, live_db, settings):  # type: ignore[no-untyped-def]
    # One hop per request: request_started (stale connections closed), the view and request_finished
    # (connections given back) all run on the same serving thread, as under WSGI.
    from django.core import signals

    seen: list[tuple[str, str]] = []

    def started(**kwargs: object) -> None:
        seen.append(("started", threading.current_thread().name))

    def finished(**kwargs: object) -> None:
        seen.append(("finished", threading.current_thread().name))

    signals.request_started.connect(started)
    signals.request_finished.connect(finished)
    try:
        assert _get("/api/v1/anomalies", tenant_world["a"].keys["read"])[0] == 200
        assert _get("/api/v1/anomalies", "pk_bogus.key")[0] == 401
    finally:
        signals.request_started.disconnect(started)
        signals.request_finished.disconnect(finished)
        from pulse.asgi import django_asgi_app

        _on_each_request_thread(django_asgi_app, settings.PULSE_WEB_THREADS)  # close the threads' connections
    assert [what for what, _ in seen] == ["started", "finished"] * 2
    assert seen[0][1] == seen[1][1] and seen[2][1] == seen[3][1]
    assert all(name.startswith("pulse-http") for _, name in seen)
