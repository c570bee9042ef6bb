"""Slack incoming-webhook transport: a message with blocks (header, fields, reasons, a dashboard button)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from alerts.rendering import Message, message_from_payload
from pulse.lib.http import HttpError, http_post_json

from .base import MASK, Outcome, Transport, TransportError, register
from .webhook import check_url_field

SEVERITY_EMOJI = {"low": ":large_blue_circle:", "medium": ":large_yellow_circle:", "high": ":large_orange_circle:",
                  "critical": ":red_circle:"}
MAX_DIGEST_ITEMS = 15  # Slack allows 50 blocks per message


class SlackConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    webhook_url: str = Field(max_length=2000)


def _text(value: str, limit: int = 2900) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def message_blocks(message: Message) -> list[dict[str, Any]]:
    emoji = SEVERITY_EMOJI.get(message.severity, "")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _text(message.title, 150), "emoji": True}},
    ]
    if message.text:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _text(f"{emoji} {message.text}".strip())}})
    if message.fields:
        fields = [{"type": "mrkdwn", "text": _text(f"*{label}*\n{value}", 1900)} for label, value in message.fields[:10]]
        blocks.append({"type": "section", "fields": fields})
    if message.reasons:
        lines = "\n".join(f"• {reason}" for reason in message.reasons[:8])
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _text("*Why*\n" + lines)}})
    if message.root_cause:
        lines = "\n".join(f"{i}. {item}" for i, item in enumerate(message.root_cause, 1))
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _text("*Top contributors*\n" + lines)}})
    for item in message.items[:MAX_DIGEST_ITEMS]:
        line = f"{SEVERITY_EMOJI.get(item.severity, '')} *{item.title}*"
        if item.text:
            line += f"\n{item.text}"
        if item.url:
            line += f"\n<{item.url}|Open in PulseEcom>"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _text(line)}})
    if len(message.items) > MAX_DIGEST_ITEMS:
        blocks.append({"type": "context", "elements": [
            {"type": "mrkdwn", "text": f"…and {len(message.items) - MAX_DIGEST_ITEMS} more in PulseEcom"}]})
    if message.url:
        blocks.append({"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "Open in PulseEcom"}, "url": message.url}]})
    return blocks


@register
class SlackTransport(Transport):
    kind = "slack"
    config_model = SlackConfig
    secret_fields = ("webhook_url",)  # the URL is the credential

    @classmethod
    def check_targets(cls, config: dict[str, Any]) -> None:
        check_url_field("webhook_url", config["webhook_url"])

    @classmethod
    def masked_config(cls, config: dict[str, Any]) -> dict[str, Any]:
        url = str(config.get("webhook_url", ""))
        scheme, _, rest = url.partition("://")
        host = rest.split("/", 1)[0]
        return {**config, "webhook_url": f"{scheme}://{host}/{MASK}{url[-4:]}" if url else ""}

    def notify(self, delivery: Any) -> Outcome:
        message = message_from_payload(delivery.payload)
        body = {"text": message.fallback_text(), "blocks": message_blocks(message)}
        try:
            result = http_post_json(self.channel.config["webhook_url"], body)
        except HttpError as exc:
            raise TransportError(exc.message, permanent=exc.permanent, response_code=exc.status_code,
                                 attempts=max(exc.attempts, 1)) from exc
        return Outcome(result.status_code, result.attempts)
