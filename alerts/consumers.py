"""The live feed: one websocket group per tenant; services push to it after commit."""

from __future__ import annotations

from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer


def feed_group(schema_name: str) -> str:
    return f"feed.{schema_name}"


class FeedConsumer(AsyncJsonWebsocketConsumer):
    group: str | None = None

    async def connect(self) -> None:
        tenant = self.scope.get("tenant")
        if tenant is None:
            await self.close(code=4401)
            return
        self.group = feed_group(tenant.schema_name)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_json({"type": "hello", "tenant": tenant.slug})

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def feed_message(self, event: dict[str, Any]) -> None:
        await self.send_json(event["payload"])
