"""Transports: one class per channel kind behind one interface, registered by kind."""

from __future__ import annotations

from .base import (
    ChannelConfigError,
    Outcome,
    Transport,
    TransportError,
    register,
    transport_class,
    transport_for,
)
from .email import EmailTransport
from .slack import SlackTransport
from .webhook import WebhookTransport, sign_body

__all__ = [
    "ChannelConfigError", "EmailTransport", "Outcome", "SlackTransport", "Transport", "TransportError",
    "WebhookTransport", "register", "sign_body", "transport_class", "transport_for",
]
