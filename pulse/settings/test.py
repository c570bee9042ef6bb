"""Tests run against the real PostgreSQL and Redis. Each parallel checkout can pick its own database
(DATABASE_URL) and Redis db (PULSE_TEST_REDIS_URL) so runs never step on each other."""

from __future__ import annotations

import os

os.environ.setdefault("REDIS_URL", os.environ.get("PULSE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15"))

from .base import *  # noqa: E402,F403
from .env import env_str  # noqa: E402

REDIS_URL = os.environ["REDIS_URL"]
CACHES["default"]["LOCATION"] = REDIS_URL  # noqa: F405
CELERY_BROKER_URL = REDIS_URL
CHANNEL_LAYERS["default"]["CONFIG"]["hosts"] = [REDIS_URL]  # noqa: F405
DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
PULSE_PLATFORM_ADMIN_KEY = env_str("PULSE_PLATFORM_ADMIN_KEY", "test-platform-admin-key")
PULSE_ALLOW_PRIVATE_WEBHOOKS = True
PULSE_DEFER_AFTER_RESPONSE = False
# Tests change keys and tenants with queryset updates (no signals): resolve every key afresh.
PULSE_API_KEY_CACHE_SECONDS = 0.0
PULSE_SCORER_REVISION_SECONDS = 0.0
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
MEDIA_ROOT = STATE_DIR / "test-media"  # noqa: F405
LOGGING["root"]["level"] = "WARNING"  # noqa: F405
