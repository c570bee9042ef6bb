"""Channels: the live websocket feed goes through Redis so every web process sees every tenant group."""

from __future__ import annotations

from .env import env_str

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [env_str("CHANNELS_REDIS_URL", env_str("REDIS_URL", "redis://127.0.0.1:6379/0"))],
                   "prefix": "pulse-ws"},
    }
}
