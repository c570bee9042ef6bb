"""Webhook transport: POST the JSON payload, signed so receivers can check it came from us.

Signature: `X-Pulse-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" with the channel secret>`,
`X-Pulse-Timestamp: <unix seconds>` (receivers should refuse stale timestamps to stop replays) and
`X-Pulse-Delivery: <uuid>`, the same on every retry of one notification so receivers can drop repeats."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from pulse.lib.http import HttpError, UnsafeUrlError, check_url_allowed, encode_json, http_post_json

from .base import ChannelConfigError, Outcome, Transport, TransportError, register


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(24)


def sign_body(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class WebhookConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2000)
    secret: str = Field(default_factory=new_secret, min_length=16, max_length=200)


def check_url_field(field: str, url: str) -> None:
    try:
        check_url_allowed(url)
    except UnsafeUrlError as exc:
        raise ChannelConfigError({f"config.{field}": [exc.message]}) from exc


@register
class WebhookTransport(Transport):
    kind = "webhook"
    config_model = WebhookConfig
    idempotent = True
    secret_fields = ("secret",)

    @classmethod
    def check_targets(cls, config: dict[str, Any]) -> None:
        check_url_field("url", config["url"])

    def notify(self, delivery: Any) -> Outcome:
        config = self.channel.config
        body = encode_json(delivery.payload)
        timestamp = str(int(time.time()))
        headers = {
            "X-Pulse-Signature": sign_body(config["secret"], timestamp, body),
            "X-Pulse-Timestamp": timestamp,
            "X-Pulse-Delivery": str(delivery.key),
            "X-Pulse-Event": delivery.event or delivery.kind,
        }
        try:
            result = http_post_json(config["url"], body=body, headers=headers)
        except HttpError as exc:
            raise TransportError(exc.message, permanent=exc.permanent, response_code=exc.status_code,
                                 attempts=max(exc.attempts, 1)) from exc
        return Outcome(result.status_code, result.attempts)
