"""The transport interface. A transport turns a Delivery's payload into one request to its channel and
reports the outcome; rendering (what the message says) happens before, in alerts.rendering."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ValidationError

if TYPE_CHECKING:
    from alerts.models import Channel, Delivery


class TransportError(Exception):
    """A failed send. `permanent` failures disable the channel; others are retried later."""

    def __init__(self, message: str, *, permanent: bool = False, response_code: int | None = None,
                 attempts: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.response_code = response_code
        self.attempts = attempts


class ChannelConfigError(ValueError):
    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{k}: {', '.join(v)}" for k, v in errors.items()))
        self.errors = errors


@dataclass
class Outcome:
    response_code: int | None
    attempts: int = 1
    detail: str = ""


MASK = "••••"


def mask_secret(value: str, keep: int = 4) -> str:
    if not value:
        return ""
    return MASK + value[-keep:] if len(value) > keep * 3 else MASK


class Transport:
    kind: ClassVar[str]
    config_model: ClassVar[type[BaseModel]]
    # True when the receiver can drop a repeated send (webhook: X-Pulse-Delivery), so a retry after a
    # crash mid-send is harmless.
    idempotent: ClassVar[bool] = False
    secret_fields: ClassVar[tuple[str, ...]] = ()

    def __init__(self, channel: Channel) -> None:
        self.channel = channel

    def notify(self, delivery: Delivery) -> Outcome:
        raise NotImplementedError

    @classmethod
    def clean_config(cls, config: Any, *, previous: dict[str, Any] | None = None) -> dict[str, Any]:
        """Validate a config given through the API or admin. Secret fields sent back masked (as the API
        shows them) or left out keep their previous value."""
        if not isinstance(config, dict):
            raise ChannelConfigError({"config": ["must be a JSON object"]})
        merged = dict(config)
        for name in cls.secret_fields:
            given = merged.get(name)
            if previous and previous.get(name) and (given is None or given == cls.masked_config(previous).get(name)):
                merged[name] = previous[name]
        try:
            cleaned = cls.config_model.model_validate(merged).model_dump()
        except ValidationError as exc:
            errors: dict[str, list[str]] = {}
            for err in exc.errors():
                where = "config." + ".".join(str(p) for p in err["loc"]) if err["loc"] else "config"
                errors.setdefault(where, []).append(err["msg"].removeprefix("Value error, "))
            raise ChannelConfigError(errors) from exc
        cls.check_targets(cleaned)
        return cleaned

    @classmethod
    def check_targets(cls, config: dict[str, Any]) -> None:
        """Refuse targets tenants may not reach (private addresses); raises ChannelConfigError."""

    @classmethod
    def masked_config(cls, config: dict[str, Any]) -> dict[str, Any]:
        shown = dict(config)
        for name in cls.secret_fields:
            if shown.get(name):
                shown[name] = mask_secret(str(shown[name]))
        return shown


_REGISTRY: dict[str, type[Transport]] = {}


def register(cls: type[Transport]) -> type[Transport]:
    _REGISTRY[cls.kind] = cls
    return cls


def transport_class(kind: str) -> type[Transport]:
    try:
        return _REGISTRY[kind]
    except KeyError as exc:
        raise ChannelConfigError({"kind": [f"unknown channel kind '{kind}' (known: {', '.join(sorted(_REGISTRY))})"]}) from exc


def transport_for(channel: Channel) -> Transport:
    return transport_class(channel.kind)(channel)
