"""The web server (`pulse.web`, uvicorn) in a real subprocess: the live feed over a real websocket, and
keep-alive connections that survive a pause (uvicorn's default closed them after 5 s idle)."""

from __future__ import annotations

import asyncio
import http.client
import json
import time
from urllib.parse import urlsplit

import websockets
from django_tenants.utils import schema_context


def _publish(schema: str, marker: str) -> int:
    """Runs on an executor thread: its database connection is closed here, or the test database
    could not be dropped at the end of the session (a session still open)."""
    from django.db import connection

    from alerts.services import feed_publish

    try:
        with schema_context(schema):
            return feed_publish(type="anomaly.created", data={"marker": marker}).pk
    finally:
        connection.close()


def test_live_feed_over_a_real_websocket(pulse_server, tenant_world, live_db) -> None:  # type: ignore[no-untyped-def]
    a, b = tenant_world["a"], tenant_world["b"]
    ws_url = pulse_server.replace("http://", "ws://") + "/ws/feed/"

    async def scenario() -> None:
        async with websockets.connect(f"{ws_url}?api_key={a.keys['read']}", open_timeout=10) as feed:
            hello = json.loads(await asyncio.wait_for(feed.recv(), 10))
            assert hello["type"] == "hello" and hello["tenant"] == a.slug
            await asyncio.to_thread(_publish, b.schema, "b-only")
            pk = await asyncio.to_thread(_publish, a.schema, "over-the-wire")
            got = json.loads(await asyncio.wait_for(feed.recv(), 10))
            assert got["id"] == pk and got["data"] == {"marker": "over-the-wire"}
        # An ingest-only key may not read the feed: closed before the handshake completes, which a real
        # server answers with HTTP 403 (the in-process tests see the consumer's close code 4401).
        try:
            async with websockets.connect(f"{ws_url}?api_key={a.keys['ingest']}", open_timeout=10):
                raise AssertionError("an ingest-only key was served the feed")
        except websockets.InvalidStatus as refused:
            assert refused.response.status_code == 403

    try:
        asyncio.run(scenario())
    finally:
        from alerts.models import FeedMessage

        for schema in (a.schema, b.schema):
            with schema_context(schema):
                FeedMessage.objects.all().delete()


def test_a_kept_alive_connection_survives_a_pause(pulse_server, tenant_world) -> None:  # type: ignore[no-untyped-def]
    url = urlsplit(pulse_server)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    headers = {"Authorization": f"Api-Key {tenant_world['a'].keys['read']}"}
    try:
        for pause in (0.0, 6.0):  # longer than uvicorn's default keep-alive of 5 s
            time.sleep(pause)
            conn.request("GET", "/api/v1/status", headers=headers)
            response = conn.getresponse()
            response.read()
            assert response.status == 200
    finally:
        conn.close()
