"""The live feed over a real ASGI websocket (pulse.asgi.application): API-key auth, tenant isolation,
push after commit only, and catch-up after a reconnect."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connection, transaction
from django_tenants.utils import schema_context


def _publish(schema: str, marker: str) -> int:
    from alerts.services import feed_publish

    with schema_context(schema):
        return feed_publish(type="anomaly.created", data={"marker": marker}).pk


def _cleanup(*schemas: str) -> None:
    from alerts.models import FeedMessage

    for schema in schemas:
        with schema_context(schema):
            FeedMessage.objects.all().delete()


def _communicator(key: str, query: str = "") -> WebsocketCommunicator:
    from pulse.asgi import application

    return WebsocketCommunicator(application, f"/ws/feed/{query}",
                                 headers=[(b"authorization", f"Api-Key {key}".encode()), (b"host", b"testserver")])


async def _open(key: str, query: str = "") -> tuple[WebsocketCommunicator, dict[str, Any]]:
    communicator = _communicator(key, query)
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    hello = await communicator.receive_json_from(timeout=5)
    assert hello["type"] == "hello"
    return communicator, hello


def test_feed_message_envelope(tenant_a) -> None:
    # Also makes pytest-django set up the test database when this file runs alone: it only does so
    # when some collected test uses `db`, and the websocket tests below use `live_db` only.
    from alerts.models import FeedMessage
    from alerts.selectors import feed_last_id, feed_since

    row = FeedMessage.objects.create(type="alert.opened", payload={"x": 1})
    assert row.envelope() == {"id": row.pk, "type": "alert.opened", "created_at": row.created_at.isoformat(),
                              "data": {"x": 1}}
    assert feed_since(last_id=row.pk - 1) == [row.envelope()] and feed_last_id() == row.pk


@pytest.fixture
def world(tenant_world, live_db, redis_client):  # type: ignore[no-untyped-def]
    a, b = tenant_world["a"], tenant_world["b"]
    _cleanup(a.schema, b.schema)
    yield a, b
    _cleanup(a.schema, b.schema)


def test_a_client_never_receives_another_tenants_messages(world) -> None:  # type: ignore[no-untyped-def]
    a, b = world

    async def scenario() -> None:
        client_a, hello_a = await _open(a.keys["read"])
        client_b, _ = await _open(b.keys["admin"])
        assert hello_a["tenant"] == a.slug
        await database_sync_to_async(_publish)(b.schema, "b-secret")
        await database_sync_to_async(_publish)(a.schema, "a-1")
        got_a = await client_a.receive_json_from(timeout=5)
        assert got_a["type"] == "anomaly.created" and got_a["data"] == {"marker": "a-1"}
        assert await client_a.receive_nothing(timeout=0.3)
        got_b = await client_b.receive_json_from(timeout=5)
        assert got_b["data"] == {"marker": "b-secret"}
        assert await client_b.receive_nothing(timeout=0.2)
        # A asking B's history by id gets A's history only.
        await client_a.send_json_to({"action": "since", "last_id": 0})
        replay = await client_a.receive_json_from(timeout=5)
        assert replay["data"] == {"marker": "a-1"}
        assert (await client_a.receive_json_from(timeout=5))["type"] == "caught_up"
        await client_a.disconnect()
        await client_b.disconnect()

    async_to_sync(scenario)()


def test_unauthenticated_or_ingest_only_connections_are_refused(world) -> None:  # type: ignore[no-untyped-def]
    a, _ = world

    async def scenario() -> None:
        for key in ("pk_nope_nothing", a.keys["ingest"], a.keys["revoked"]):
            communicator = _communicator(key)
            connected, code = await communicator.connect(timeout=5)
            assert not connected and code == 4401
            await communicator.disconnect()

    async_to_sync(scenario)()


def test_push_happens_only_after_commit(world) -> None:  # type: ignore[no-untyped-def]
    a, _ = world

    async def scenario() -> None:
        client, _ = await _open(a.keys["read"])

        def publish_in_transaction() -> None:
            with schema_context(a.schema), transaction.atomic():
                _publish(a.schema, "later")
                # Still inside the transaction: nothing may have been pushed.
                assert async_to_sync(client.receive_nothing)(timeout=0.3)

        await database_sync_to_async(publish_in_transaction)()
        assert (await client.receive_json_from(timeout=5))["data"] == {"marker": "later"}
        await client.disconnect()

    async_to_sync(scenario)()


def test_rolled_back_messages_are_never_pushed(world) -> None:  # type: ignore[no-untyped-def]
    a, _ = world

    async def scenario() -> None:
        client, _ = await _open(a.keys["read"])

        def publish_and_roll_back() -> None:
            with schema_context(a.schema):
                try:
                    with transaction.atomic():
                        _publish(a.schema, "ghost")
                        raise RuntimeError("roll back")
                except RuntimeError:
                    pass

        await database_sync_to_async(publish_and_roll_back)()
        assert await client.receive_nothing(timeout=0.4)
        await client.disconnect()

    async_to_sync(scenario)()


def test_reconnecting_client_catches_up(world) -> None:  # type: ignore[no-untyped-def]
    a, _ = world

    async def scenario() -> None:
        client, _ = await _open(a.keys["read"])
        first = await database_sync_to_async(_publish)(a.schema, "m1")
        seen = await client.receive_json_from(timeout=5)
        assert seen["id"] == first
        await client.disconnect()
        # Missed while away.
        for marker in ("m2", "m3"):
            await database_sync_to_async(_publish)(a.schema, marker)
        # Reconnect with ?last_id=N (key in the query string, as browsers do).
        from pulse.asgi import application

        again = WebsocketCommunicator(application, f"/ws/feed/?api_key={a.keys['read']}&last_id={first}")
        connected, _ = await again.connect(timeout=5)
        assert connected
        hello = await again.receive_json_from(timeout=5)
        assert hello["type"] == "hello" and hello["last_id"] > first
        missed = [await again.receive_json_from(timeout=5) for _ in range(2)]
        assert [m["data"]["marker"] for m in missed] == ["m2", "m3"]
        assert missed[0]["id"] < missed[1]["id"]
        done = await again.receive_json_from(timeout=5)
        assert done == {"type": "caught_up", "last_id": missed[1]["id"], "more": False}
        # Live messages keep flowing after the catch-up, and `since` works on an open connection.
        await database_sync_to_async(_publish)(a.schema, "m4")
        assert (await again.receive_json_from(timeout=5))["data"] == {"marker": "m4"}
        await again.send_json_to({"action": "since", "last_id": missed[1]["id"]})
        assert (await again.receive_json_from(timeout=5))["data"] == {"marker": "m4"}
        assert (await again.receive_json_from(timeout=5))["type"] == "caught_up"
        await again.send_json_to({"action": "since", "last_id": "x"})
        assert (await again.receive_json_from(timeout=5))["type"] == "error"
        await again.disconnect()

    async_to_sync(scenario)()


def test_dispatch_pushes_anomalies_and_alerts_to_the_feed(world) -> None:  # type: ignore[no-untyped-def]
    """The real path: anomalies recorded and dispatched in tenant A reach A's websocket after commit."""
    a, _ = world
    from tests.alerts.conftest import make_anomaly

    def record_and_dispatch() -> list[int]:
        from alerts.services import alerts_dispatch
        from scoring.models import Anomaly

        with schema_context(a.schema):
            anomaly = Anomaly.objects.create(**{f.name: getattr(make_anomaly(fingerprint="feed-test"), f.name)
                                               for f in Anomaly._meta.fields if f.name != "id"})
            try:
                alerts_dispatch(anomaly_ids=[anomaly.pk])
            finally:
                from alerts.models import Alert

                Alert.objects.filter(fingerprint="feed-test").delete()
                anomaly.delete()
        return [anomaly.pk]

    async def scenario() -> None:
        client, _ = await _open(a.keys["read"])
        await database_sync_to_async(record_and_dispatch)()
        first = await client.receive_json_from(timeout=5)
        second = await client.receive_json_from(timeout=5)
        assert first["type"] == "anomaly.created" and first["data"]["url"].endswith(f"/anomalies/{first['data']['id']}")
        assert second["type"] == "alert.opened" and second["data"]["fingerprint"] == "feed-test"
        await client.disconnect()

    async_to_sync(scenario)()
    assert connection.schema_name == "public"
