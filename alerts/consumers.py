"""The live feed: one websocket group per tenant; services push to it after commit.

Protocol (JSON):
- server → client on connect: `{"type": "hello", "tenant": slug, "last_id": N}` (N: newest stored id);
- server → client: `{"id": N, "type": "anomaly.created" | "alert.opened" | ..., "created_at", "data"}`,
  ids increase;
- client → server: `{"action": "since", "last_id": N}` replays everything after N (also `?last_id=N` on
  connect), then `{"type": "caught_up", "last_id": M, "more": bool}`; `{"action": "ping"}` → pong.
The replay starts after joining the group, so nothing falls in between; a message that arrives live
while replaying is not sent twice."""

from __future__ import annotations

from collections import deque
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

CATCH_UP_LIMIT = 1000


def feed_group(schema_name: str) -> str:
    return f"feed.{schema_name}"


@database_sync_to_async
def _since(schema: str, last_id: int, limit: int) -> list[dict[str, Any]]:
    from django_tenants.utils import schema_context

    from .selectors import feed_since

    with schema_context(schema):
        return feed_since(last_id=last_id, limit=limit)


@database_sync_to_async
def _last_id(schema: str) -> int:
    from django_tenants.utils import schema_context

    from .selectors import feed_last_id

    with schema_context(schema):
        return feed_last_id()


class FeedConsumer(AsyncJsonWebsocketConsumer):
    group: str | None = None
    schema: str = ""

    async def connect(self) -> None:
        tenant = self.scope.get("tenant")
        if tenant is None:
            await self.close(code=4401)
            return
        self.schema = tenant.schema_name
        # Ids sent recently, so a message both replayed and pushed live goes out once.
        self.recent: deque[int] = deque(maxlen=CATCH_UP_LIMIT * 2)
        self.recent_set: set[int] = set()
        self.group = feed_group(tenant.schema_name)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_json({"type": "hello", "tenant": tenant.slug, "last_id": await _last_id(self.schema)})
        query = parse_qs(self.scope.get("query_string", b"").decode())
        if "last_id" in query:
            await self._catch_up(query["last_id"][0])

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        action = content.get("action") if isinstance(content, dict) else None
        if action == "since":
            await self._catch_up(content.get("last_id"))
        elif action == "ping":
            await self.send_json({"type": "pong"})
        else:
            await self.send_json({"type": "error", "detail": "unknown action; use 'since' or 'ping'"})

    async def _catch_up(self, raw_last_id: Any) -> None:
        try:
            last_id = int(raw_last_id)
        except (TypeError, ValueError):
            await self.send_json({"type": "error", "detail": "last_id must be an integer"})
            return
        messages = await _since(self.schema, last_id, CATCH_UP_LIMIT)
        for envelope in messages:  # asked for explicitly: sent even if sent before
            self._remember(envelope.get("id"))
            await self.send_json(envelope)
        newest = messages[-1]["id"] if messages else last_id
        await self.send_json({"type": "caught_up", "last_id": newest, "more": len(messages) == CATCH_UP_LIMIT})

    def _remember(self, message_id: Any) -> bool:
        """Record an id as sent; False when it already was."""
        if not isinstance(message_id, int):
            return True
        if message_id in self.recent_set:
            return False
        if len(self.recent) == self.recent.maxlen:
            self.recent_set.discard(self.recent[0])
        self.recent.append(message_id)
        self.recent_set.add(message_id)
        return True

    async def feed_message(self, event: dict[str, Any]) -> None:
        envelope = event["payload"]
        if self._remember(envelope.get("id")):  # not already replayed by a catch-up
            await self.send_json(envelope)

    async def feed_messages(self, event: dict[str, Any]) -> None:
        """Several messages of one dispatch in one channel-layer message (one group_send per batch)."""
        for envelope in event["payloads"]:
            if self._remember(envelope.get("id")):
                await self.send_json(envelope)
